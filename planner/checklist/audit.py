"""Audit history of a project's artifacts, read from django-simple-history's tables."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from heapq import merge

from django.db import models

from planner.models import (
    ApproverRequirement,
    Assignment,
    BackfillPlan,
    ChangelogEntry,
    Comment,
    Connection,
    ConnectionOwnership,
    DataElement,
    DeploymentPlan,
    ErrorStrategy,
    FieldMapping,
    GoLive,
    GoLiveRevert,
    Improvement,
    IncidentEntry,
    IntegrationProject,
    Membership,
    Monitor,
    Objective,
    PatternDecision,
    PersonalField,
    RollbackStep,
    RollbackTrigger,
    RolloutPhase,
    RunSchedule,
    SecurityReview,
    SignOff,
    SignOffStale,
    SuccessCriterion,
    System,
    SystemEndpoint,
    SystemProfile,
    TestCase,
    TestPlan,
    TrainingPlan,
)

TRACKED: dict[str, type[models.Model]] = {
    "project": IntegrationProject,
    "member": Membership,
    "system": System,
    "connection": Connection,
    "objective": Objective,
    "criterion": SuccessCriterion,
    "element": DataElement,
    "decision": PatternDecision,
    "mapping": FieldMapping,
    # Steps 4 to 7, and the sign-offs (which are only ever created, never changed).
    "testplan": TestPlan,
    "testcase": TestCase,
    "deployment": DeploymentPlan,
    "trigger": RollbackTrigger,
    "rollbackstep": RollbackStep,
    "monitor": Monitor,
    "training": TrainingPlan,
    "incident": IncidentEntry,
    "approvers": ApproverRequirement,
    "signoff": SignOff,
    "stalesignoff": SignOffStale,
    # Going live and back: immutable events, each with who, when and (for a revert) why.
    "golive": GoLive,
    "golive_revert": GoLiveRevert,
    # The guides' practices, per connection.
    "ownership": ConnectionOwnership,
    "errorstrategy": ErrorStrategy,
    "securityreview": SecurityReview,
    "personalfield": PersonalField,
    "backfill": BackfillPlan,
    "systemprofile": SystemProfile,
    "rolloutphase": RolloutPhase,
    # After go-live.
    "improvement": Improvement,
    "changelog": ChangelogEntry,
    # Validation runs: connection settings (secrets never reach history) and schedules.
    "endpoint": SystemEndpoint,
    "runschedule": RunSchedule,
    # Working as a team: who was given what, and the discussions (edits and resolutions).
    "assignment": Assignment,
    "comment": Comment,
}
# Bookkeeping that says nothing to a reader of the audit trail.
HIDDEN_FIELDS = {"id", "version", "updated_at", "created_at", "project", "position"}
# Not in the history tables at all (HistoricalRecords(excluded_fields=...)): secrets, test results.
HIDDEN_FIELDS |= {"secrets_token", "last_test", "last_tested_at"}
ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}


@dataclass
class Change:
    slug: str
    record: models.Model  # a historical record
    changed: list[str]

    @property
    def action(self) -> str:
        return ACTIONS[self.record.history_type]

    @property
    def label(self) -> str:
        return str(self.record.instance)

    @property
    def kind(self) -> str:
        return str(TRACKED[self.slug]._meta.verbose_name)

    @property
    def when(self) -> datetime:
        return self.record.history_date


def history_of(slug: str, project: IntegrationProject) -> models.QuerySet:
    model = TRACKED[slug]
    historical = model.history.model
    if model is IntegrationProject:
        return historical.objects.filter(id=project.pk)
    return historical.objects.filter(project_id=project.pk)


def _shown_fields(model: type[models.Model]) -> list[models.Field]:
    return [f for f in model._meta.fields if f.name not in HIDDEN_FIELDS]


def recent_changes(
    project: IntegrationProject, limit: int = 50, before: datetime | None = None
) -> list[Change]:
    """The newest `limit` changes across every tracked artifact, newest first."""
    streams = []
    for slug in TRACKED:
        qs = history_of(slug, project).select_related("history_user")
        if before is not None:
            qs = qs.filter(history_date__lt=before)
        streams.append([(slug, r) for r in qs.order_by("-history_date", "-history_id")[:limit]])
    newest = list(merge(*streams, key=lambda item: item[1].history_date, reverse=True))[:limit]
    return _with_changed_fields(project, newest)


def _with_changed_fields(project, items: list[tuple[str, models.Model]]) -> list[Change]:
    """Work out which fields each update touched, with one query per artifact kind."""
    by_slug: dict[str, set[int]] = {}
    for slug, record in items:
        by_slug.setdefault(slug, set()).add(record.id)
    versions: dict[tuple[str, int], list] = {}
    for slug, ids in by_slug.items():
        for r in (
            history_of(slug, project).filter(id__in=ids).order_by("history_date", "history_id")
        ):
            versions.setdefault((slug, r.id), []).append(r)
    changes = []
    for slug, record in items:
        changed: list[str] = []
        if record.history_type == "~":
            chain = versions[(slug, record.id)]
            position = [r.history_id for r in chain].index(record.history_id)
            if position > 0:
                changed = diff_fields(chain[position - 1], record)
        changes.append(Change(slug, record, changed))
    return changes


def diff_fields(old: models.Model, new: models.Model) -> list[str]:
    model = TRACKED_BY_HISTORY[type(new)]
    return [
        str(f.verbose_name)
        for f in _shown_fields(model)
        if getattr(old, f.attname) != getattr(new, f.attname)
    ]


def display(field: models.Field, record: models.Model) -> str:
    """A field's value as a person reads it: choice labels, names of related records."""
    raw = getattr(record, field.attname)
    if raw is None or raw == "":
        return ""
    if field.choices:
        return str(dict(field.flatchoices).get(raw, raw))
    if field.is_relation:
        related = field.related_model._default_manager.filter(pk=raw).first()
        return str(related) if related else f"#{raw} (deleted)"
    if isinstance(raw, Decimal):
        return f"{raw.normalize():f}"  # '5', not the column's '5.0000'
    return str(raw)


@dataclass
class FieldDiff:
    label: str
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new


def field_diff(slug: str, old: models.Model | None, new: models.Model) -> list[FieldDiff]:
    """Every shown field of two versions side by side (old may be None for a creation)."""
    out = []
    for f in _shown_fields(TRACKED[slug]):
        out.append(FieldDiff(str(f.verbose_name), display(f, old) if old else "—", display(f, new)))
    return out


TRACKED_BY_HISTORY = {model.history.model: model for model in TRACKED.values()}
