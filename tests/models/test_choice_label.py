"""`choice_label` answers what Django's get_<field>_display does, for every field with choices."""

from django.apps import apps

from planner.models import SuccessCriterion
from planner.models.base import choice_label


def test_every_choice_of_every_model_reads_as_get_display():
    compared = 0
    for model in apps.get_app_config("planner").get_models():
        for field in model._meta.concrete_fields:
            if not field.choices:
                continue
            values = [value for value, _ in field.flatchoices] + ["not-a-choice", "", None]
            for value in values:
                obj = model(**{field.attname: value})
                display = getattr(obj, f"get_{field.name}_display")()
                assert choice_label(obj, field.name) == display, (model.__name__, field.name)
                compared += 1
    assert compared > 50


def test_labels_follow_the_value():
    criterion = SuccessCriterion(comparator="<=", metric_key="")
    assert choice_label(criterion, "comparator") == "≤"
    criterion.comparator = ">"
    assert choice_label(criterion, "comparator") == ">"
    assert choice_label(criterion, "metric_key") == ""
