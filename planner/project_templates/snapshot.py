"""A project's plan as plain JSON, and a new project made from it.

`take` walks the models in `PARTS` (each referenced model before the models that point at
it) and keeps every content field; foreign keys become references inside the snapshot, so
`instantiate` never looks anything up outside it: a snapshot cannot reach another project's
rows. What a template must never carry is not in `PARTS` at all (runs, sign-offs, go-lives,
reviews, alerts and their channels, endpoint settings and secrets, exports, members,
history), and evidence of things that happened in the source project is left out per model
(`DROP`): test results and their files, rehearsals, security review dates, manual evidence.
"""

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import models, transaction

from planner.models import (
    ApproverRequirement,
    BackfillPlan,
    Connection,
    ConnectionOwnership,
    DataElement,
    DeploymentPlan,
    ErrorStrategy,
    FieldMapping,
    IncidentEntry,
    IntegrationProject,
    Membership,
    Monitor,
    Objective,
    PatternDecision,
    PersonalField,
    ReviewSchedule,
    Role,
    RollbackStep,
    RollbackTrigger,
    RolloutPhase,
    SecurityReview,
    SuccessCriterion,
    System,
    SystemProfile,
    TestCase,
    TestPlan,
    TrainingPlan,
    ValueMeaning,
)

FORMAT = 1


@dataclass(frozen=True)
class Part:
    model: type[models.Model]
    key: str  # the snapshot's name for these rows
    drop: frozenset[str] = field(default_factory=frozenset)


PARTS: tuple[Part, ...] = (
    Part(System, "systems"),
    Part(Connection, "connections"),
    Part(Objective, "objective"),
    Part(
        SuccessCriterion,
        "criteria",
        frozenset({"evidence_value", "evidence_date", "evidence_note"}),
    ),
    Part(DataElement, "data_elements"),
    Part(PatternDecision, "pattern"),
    Part(FieldMapping, "mapping"),
    Part(ValueMeaning, "value_meanings"),
    Part(TestPlan, "test_plan"),
    Part(
        TestCase,
        "test_cases",
        frozenset(
            {"status", "evidence_file", "evidence_note", "validation_run", "accepted_findings"}
        ),
    ),
    Part(
        DeploymentPlan,
        "deployment",
        frozenset({"rehearsed_on", "rehearsal_result", "rehearsal_notes"}),
    ),
    Part(RollbackTrigger, "rollback_triggers"),
    Part(RollbackStep, "rollback_steps"),
    Part(Monitor, "monitors"),
    Part(TrainingPlan, "training", frozenset({"go_live_on"})),
    Part(IncidentEntry, "incidents"),
    Part(ReviewSchedule, "review_schedule", frozenset({"next_due", "paused"})),
    Part(ApproverRequirement, "approvers"),
    Part(ConnectionOwnership, "owners"),
    Part(ErrorStrategy, "error_handling"),
    Part(SecurityReview, "security", frozenset({"reviewed_on", "reviewer"})),
    Part(PersonalField, "personal_data"),
    Part(BackfillPlan, "backfill", frozenset({"verification_run"})),
    Part(SystemProfile, "system_profiles"),
    Part(RolloutPhase, "rollout"),
)
_PART_OF = {p.model: p for p in PARTS}
BOOKKEEPING = frozenset({"id", "project", "version", "updated_at"})


def _copied_fields(part: Part) -> list[models.Field]:
    kept = []
    for f in part.model._meta.concrete_fields:
        if f.name in BOOKKEEPING or f.name in part.drop or f.primary_key:
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            continue
        if isinstance(f, models.FileField):
            continue
        if f.is_relation and f.related_model not in _PART_OF:
            # A link to something a template never carries (a run, a user): left out.
            continue
        kept.append(f)
    return kept


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def take(project: IntegrationProject) -> dict:
    """The project's plan, content only, as JSON-ready data."""
    snap: dict[str, Any] = {
        "format": FORMAT,
        "business_problem": project.business_problem,
        "parts": {},
    }
    for part in PARTS:
        fields = _copied_fields(part)
        rows = []
        for obj in part.model.objects.filter(project=project).order_by("pk"):
            row = {"ref": obj.pk}
            for f in fields:
                row[f.name] = (
                    getattr(obj, f.attname) if f.is_relation else _plain(f.value_from_object(obj))
                )
            rows.append(row)
        snap["parts"][part.key] = rows
    return snap


class SnapshotError(ValueError):
    """A snapshot that does not describe a plan this code can rebuild."""


def instantiate(snap: dict, name: str, user, business_problem: str = "") -> IntegrationProject:
    """A new project owned by `user` alone, holding the snapshot's plan. All or nothing."""
    if snap.get("format") != FORMAT:
        raise SnapshotError("This template was saved in a format this version cannot read.")
    with transaction.atomic():
        project = IntegrationProject.objects.create(
            name=name,
            business_problem=business_problem or snap.get("business_problem", ""),
            owner=user,
        )
        Membership.objects.create(project=project, user=user, role=Role.OWNER)
        new_pk: dict[type[models.Model], dict[int, int]] = {}
        for part in PARTS:
            fields = {f.name: f for f in _copied_fields(part)}
            new_pk[part.model] = {}
            for row in snap.get("parts", {}).get(part.key, []):
                values = {}
                for fname, value in row.items():
                    f = fields.get(fname)
                    if f is None:
                        continue
                    if f.is_relation:
                        if value is not None:
                            target = new_pk[f.related_model].get(value)
                            if target is None:
                                raise SnapshotError(f"{part.key}: {fname} names a missing row.")
                            values[f.attname] = target
                    else:
                        values[fname] = f.to_python(value)
                obj = part.model.objects.create(project=project, **values)
                new_pk[part.model][row["ref"]] = obj.pk
    return project


def counts(snap: dict) -> dict[str, int]:
    return {key: len(rows) for key, rows in snap.get("parts", {}).items() if rows}
