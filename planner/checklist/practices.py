"""The guides' practices per connection (ownership, error handling, security and privacy,
backfill), loaded once per evidence object, and what the readiness rules ask of them."""

from dataclasses import dataclass

from planner.checklist.delivery import plan_of
from planner.checklist.evidence import Evidence, attach, by_project
from planner.models import (
    BackfillPlan,
    Connection,
    ConnectionOwnership,
    ErrorStrategy,
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
    def load_many(cls, evidences: list[Evidence]) -> dict[int, "Practices"]:
        """Each project's practices, by project id: the same queries for one project or many."""
        ids = [ev.project.pk for ev in evidences]
        by_id = {c.pk: c for ev in evidences for c in ev.connections}

        def per_connection(model) -> dict[int, dict]:
            rows: dict[int, dict] = {pk: {} for pk in ids}
            for row in model.objects.filter(project_id__in=ids):
                # The connections are already loaded with their systems: no query per row.
                # (never `.get(id, row.connection)`: the default would be fetched every time)
                if row.connection_id in by_id:
                    attach(row, "connection", by_id[row.connection_id])
                rows[row.project_id][row.connection_id] = row
            return rows

        backfills = per_connection(BackfillPlan)
        plans = [b for rows in backfills.values() for b in rows.values()]
        runs = ValidationRun.objects.filter(
            pk__in=[b.verification_run_id for b in plans if b.verification_run_id]
        )
        runs_by_id = {r.pk: r for r in runs}
        for b in plans:
            if b.verification_run_id:
                attach(b, "verification_run", runs_by_id[b.verification_run_id])
        ownerships = per_connection(ConnectionOwnership)
        strategies = per_connection(ErrorStrategy)
        security = per_connection(SecurityReview)
        personal = by_project(
            PersonalField.objects.filter(project_id__in=ids).select_related("mapping")
        )
        profiles: dict[int, dict] = {pk: {} for pk in ids}
        for profile in SystemProfile.objects.filter(project_id__in=ids):
            profiles[profile.project_id][profile.system_id] = profile
        phases = by_project(
            RolloutPhase.objects.filter(project_id__in=ids).select_related(
                "promote_on_criterion", "promote_on_monitor", "rollback_trigger"
            )
        )
        return {
            pk: cls(
                ownerships=ownerships[pk],
                strategies=strategies[pk],
                security=security[pk],
                personal=personal[pk],
                backfills=backfills[pk],
                profiles=profiles[pk],
                phases=phases[pk],
            )
            for pk in ids
        }

    def personal_of(self, connection_id: int) -> list[PersonalField]:
        return [p for p in self.personal if p.mapping.connection_id == connection_id]


def load_practices(evidences: list[Evidence]) -> None:
    """Fill the practices cache of every evidence object that lacks it, in one load."""
    missing = [ev for ev in evidences if "_practices" not in ev.__dict__]
    if missing:
        loaded = Practices.load_many(missing)
        for ev in missing:
            ev.__dict__["_practices"] = loaded[ev.project.pk]


def practices_of(ev: Evidence) -> Practices:
    load_practices([ev])
    return ev.__dict__["_practices"]


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
