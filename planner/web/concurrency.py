"""Optimistic version checks, so that two people editing one record never lose an update."""

from django.db import models, transaction

from planner.checklist.audit import display
from planner.models import VersionedModel


class StaleEdit(Exception):
    """The record changed since the editor loaded it; `current` is what is stored now."""

    def __init__(self, current: models.Model) -> None:
        super().__init__(f"{current} was changed by someone else")
        self.current = current


def save_versioned(instance: VersionedModel, expected_version: int | None) -> None:
    """Save `instance` if it is still at `expected_version`, bumping the version.

    New records (no pk) are saved as they are. The row lock makes the check and the write one
    step even with several web processes.
    """
    with transaction.atomic():
        if instance.pk is not None:
            model = type(instance)
            current = model.objects.select_for_update().get(pk=instance.pk)
            if expected_version is None or current.version != expected_version:
                raise StaleEdit(current)
            instance.version = current.version + 1
        instance.save()


def changed_fields(
    submitted: VersionedModel, current: VersionedModel, names: list[str]
) -> list[tuple[str, str]]:
    """The fields where what is stored now differs from what the editor submitted."""
    out = []
    for name in names:
        field = submitted._meta.get_field(name)
        if field.value_from_object(submitted) != field.value_from_object(current):
            out.append((str(field.verbose_name), display(field, current)))
    return out


def keep_input_after_conflict(form, conflict: StaleEdit, message: str) -> list[tuple[str, str]]:
    """After a refused save: keep what the editor typed, explain, and arm a knowing re-save.

    The form's expected version moves to the stored one, so saving again overwrites on purpose.
    Returns the fields whose stored value differs from the editor's input.
    """
    current = conflict.current
    data = form.data.copy()
    data[form.add_prefix("expected_version")] = str(current.version)
    form.data = data
    form.add_error(None, message)
    if not hasattr(form, "instance"):  # a plain Form: nothing to compare field by field
        return []
    return changed_fields(form.instance, current, list(form.Meta.fields))
