"""The guides' practices per connection (ownership, error handling, security and privacy,
backfill), loaded once per evidence object, and what the readiness rules ask of them."""

from dataclasses import dataclass

from planner.checklist.delivery import plan_of
from planner.checklist.evidence import Evidence
from planner.models import (
    BackfillPlan,
    Connection,
    ConnectionOwnership,
    ErrorStrategy,
    IntegrationProject,
    Monitor,
    PersonalField,
    RolloutPhase,
    SecurityReview,
    SystemProfile,
    TestCase,
    ValidationRun,
)
from planner.models.practices import FATAL_CLASSES, SCENARIO_OF_CLASS, FailureClass
from planner.models.testing import TestStage


@dataclass
class Practices:
    ownerships: dict[int, ConnectionOwnership]
    strategies: dict[int, ErrorStrategy]
    security: dict[int, SecurityReview]
    personal: list[PersonalField]
    backfills: dict[int, BackfillPlan]
    profiles: dict[int, SystemProfile]
    phases: list[RolloutPhase]

    @classmethod
    def load(cls, project: IntegrationProject, connections: list[Connection]) -> "Practices":
        by_id = {c.pk: c for c in connections}

        def per_connection(model) -> dict:
            rows = {}
            for row in model.objects.filter(project=project):
                # The connections are already loaded with their systems: no query per row.
                row.connection = by_id.get(row.connection_id, row.connection)
                rows[row.connection_id] = row
            return rows

        backfills = per_connection(BackfillPlan)
        runs = ValidationRun.objects.filter(
            pk__in=[b.verification_run_id for b in backfills.values() if b.verification_run_id]
        )
        runs_by_id = {r.pk: r for r in runs}
        for b in backfills.values():
            if b.verification_run_id:
                b.verification_run = runs_by_id[b.verification_run_id]
        return cls(
            ownerships=per_connection(ConnectionOwnership),
            strategies=per_connection(ErrorStrategy),
            security=per_connection(SecurityReview),
            personal=list(PersonalField.objects.filter(project=project).select_related("mapping")),
            backfills=backfills,
            profiles={p.system_id: p for p in SystemProfile.objects.filter(project=project)},
            phases=list(
                RolloutPhase.objects.filter(project=project).select_related(
                    "promote_on_criterion", "promote_on_monitor", "rollback_trigger"
                )
            ),
        )

    def personal_of(self, connection_id: int) -> list[PersonalField]:
        return [p for p in self.personal if p.mapping.connection_id == connection_id]


def practices_of(ev: Evidence) -> Practices:
    cached = ev.__dict__.get("_practices")
    if cached is None:
        cached = ev.__dict__["_practices"] = Practices.load(ev.project, ev.connections)
    return cached


def is_transient(code: str) -> bool:
    return code not in FATAL_CLASSES


def class_label(code: str) -> str:
    try:
        return FailureClass(code).label
    except ValueError:
        return code


# Step 2: error handling ---------------------------------------------------------------------


def missing_error_cases(ev: Evidence) -> list[tuple[ErrorStrategy, str]]:
    """(strategy, failure class) pairs that no step-4 error-scenario case exercises yet."""
    covered = {
        (c.connection_id, c.failure_class)
        for c in plan_of(ev).test_cases
        if c.stage == TestStage.ERRORS and c.failure_class
    }
    return [
        (s, code)
        for s in practices_of(ev).strategies.values()
        for code in s.classes
        if (s.connection_id, code) not in covered
    ]


def needs_dead_letter_monitor(ev: Evidence) -> bool:
    """Failed records set aside somewhere pile up unseen unless their volume is watched."""
    strategies = practices_of(ev).strategies.values()
    watched = any(m.kind == Monitor.Kind.DEAD_LETTER for m in plan_of(ev).monitors)
    return any(s.failed_records_to for s in strategies) and not watched


def _strategy_text(s: ErrorStrategy) -> str:
    return s.get_failed_records_to_display().lower() or "wherever failed records go"


def case_for(s: ErrorStrategy, code: str) -> TestCase:
    """The error-scenario test case that proves `s` handles failures of class `code`."""
    label = class_label(code)
    where = _strategy_text(s)
    if is_transient(code):
        expected = (
            f"Retried {s.retry_attempts or '?'} times, backoff from {s.backoff_seconds or '?'} s "
            f"up to {s.max_delay_seconds or '?'} s; after the last attempt the record goes to "
            f"the {where}."
        )
        criterion = "No record lost: every record is delivered or in the " + where + "."
    else:
        expected = f"Not retried: the record goes to the {where} at once."
        criterion = f"The record is in the {where} and {s.notify or 'the owner'} is notified"
        if s.notify_within_minutes is not None:
            criterion += f" within {s.notify_within_minutes} min"
        criterion += "."
    kind = "transient" if is_transient(code) else "fatal"
    return TestCase(
        project_id=s.project_id,
        stage=TestStage.ERRORS,
        scenario=SCENARIO_OF_CLASS.get(code, "other"),
        description=f"{s.connection}: {label.lower()} ({kind})"[:300],
        expected_result=expected[:300],
        pass_criterion=criterion[:300],
        connection_id=s.connection_id,
        failure_class=code,
    )


# Security and privacy ------------------------------------------------------------------------


def unprotected_personal_data(ev: Evidence) -> list[tuple[Connection, str]]:
    """Connections carrying flagged personal fields without a retention or a review."""
    p = practices_of(ev)
    out = []
    for c in ev.connections:
        fields = p.personal_of(c.pk)
        if not fields:
            continue
        review = p.security.get(c.pk)
        gaps = []
        if review is None or not review.retention.strip():
            gaps.append("a data retention")
        if review is None or not (review.reviewed_on and review.reviewer.strip()):
            gaps.append("a security review (date and reviewer)")
        unexplained = [f.mapping.target_field for f in fields if not f.purpose.strip()]
        unexplained += [
            f.mapping.target_field for f in fields if f.purpose.strip() and not f.retention.strip()
        ]
        if unexplained:
            gaps.append("a purpose and retention for " + ", ".join(sorted(set(unexplained))))
        if gaps:
            out.append((c, " and ".join(gaps)))
    return out
