"""Steps 4 to 7: their artifacts loaded in a fixed number of queries, and what the rules ask.

`plan_of(evidence)` loads the test plan, deployment plan, monitors and training plan of the
evidence's project once (six queries however many rows) and keeps them on the evidence object,
so readiness, the step pages and the runbook share one load.
"""

from dataclasses import dataclass

from planner.checklist.evidence import Evidence, by_project
from planner.models import (
    Connection,
    DeploymentPlan,
    IncidentEntry,
    MetricKey,
    Monitor,
    RollbackStep,
    RollbackTrigger,
    TestCase,
    TestPlan,
    TrainingPlan,
    ValidationRun,
)
from planner.models.testing import REQUIRED_SCENARIOS, ErrorScenario, TestStage

BASIC_MONITORS = (
    Monitor.Kind.CONNECTIVITY,
    Monitor.Kind.THROUGHPUT,
    Monitor.Kind.ERROR_RATE,
    Monitor.Kind.DATA_QUALITY,
)

# The basic checks first, in the order an on-call engineer reads them.
MONITOR_ORDER = {kind: i for i, kind in enumerate(Monitor.Kind.values)}


@dataclass
class PlanEvidence:
    test_plan: TestPlan | None
    test_cases: list[TestCase]
    deployment: DeploymentPlan | None
    triggers: list[RollbackTrigger]
    rollback_steps: list[RollbackStep]
    monitors: list[Monitor]
    training: TrainingPlan | None
    incidents: list[IncidentEntry]

    @classmethod
    def load_many(cls, evidences: list[Evidence]) -> dict[int, "PlanEvidence"]:
        """Each project's plan, by project id: the same queries for one project or many."""
        ids = [ev.project.pk for ev in evidences]
        # The three one-per-project records came with the evidence; one query per table.
        one_to_one = {ev.project.pk: ev.__dict__["_one_to_one"] for ev in evidences}
        cases = by_project(with_run_problems(list(TestCase.objects.filter(project_id__in=ids))))
        triggers = by_project(RollbackTrigger.objects.filter(project_id__in=ids))
        rollback_steps = by_project(RollbackStep.objects.filter(project_id__in=ids))
        monitors = by_project(
            sorted(
                Monitor.objects.filter(project_id__in=ids),
                key=lambda m: (MONITOR_ORDER.get(m.kind, 99), m.pk),
            )
        )
        incidents = by_project(IncidentEntry.objects.filter(project_id__in=ids))
        out = {}
        for pk in ids:
            records = one_to_one[pk]
            out[pk] = cls(
                test_plan=getattr(records, "test_plan", None),
                test_cases=cases[pk],
                deployment=getattr(records, "deployment_plan", None),
                triggers=triggers[pk],
                rollback_steps=rollback_steps[pk],
                monitors=monitors[pk],
                training=getattr(records, "training_plan", None),
                incidents=incidents[pk],
            )
        return out


def load_plans(evidences: list[Evidence]) -> None:
    """Fill the plan cache of every evidence object that lacks it, in one load."""
    missing = [ev for ev in evidences if "_plan" not in ev.__dict__]
    if missing:
        plans = PlanEvidence.load_many(missing)
        for ev in missing:
            ev.__dict__["_plan"] = plans[ev.project.pk]


def plan_of(ev: Evidence) -> PlanEvidence:
    load_plans([ev])
    return ev.__dict__["_plan"]


# Step 4 ---------------------------------------------------------------------------------------


def with_run_problems(cases: list[TestCase]) -> list[TestCase]:
    """Set `run_problem` on each case: why its linked validation run does not evidence a pass.

    A passed case's run must have passed, or the case states which findings it accepts; and a
    validation run on the same connection that failed after it makes the case stale. Two
    queries, only when a case links a run.
    """
    linked = {c.validation_run_id for c in cases if c.validation_run_id}
    runs, failed = {}, []
    if linked:
        runs = {
            r.pk: r
            for r in ValidationRun.objects.filter(pk__in=linked).only(
                "pk", "number", "status", "connection_id", "created_at", "finished_at", "kind"
            )
        }
        failed = list(
            ValidationRun.objects.filter(
                connection_id__in={r.connection_id for r in runs.values()},
                kind="validation",
                status=ValidationRun.Status.FAILED,
            )
            .order_by("-created_at", "-pk")
            .only("pk", "number", "connection_id", "created_at")
        )
    for case in cases:
        case.linked_run = runs.get(case.validation_run_id)
        case.run_problem = _run_problem(case, case.linked_run, failed)
    return cases


def run_problem_of(case: TestCase) -> str:
    if not hasattr(case, "run_problem"):
        with_run_problems([case])
    return case.run_problem


def linked_run_of(case: TestCase) -> ValidationRun | None:
    """The validation run evidencing the case (number, outcome, dates), loaded with the rest."""
    if not hasattr(case, "linked_run"):
        with_run_problems([case])
    return case.linked_run


def _run_problem(case: TestCase, run: ValidationRun | None, failed: list) -> str:
    if run is None or case.status != TestCase.Status.PASSED:
        return ""
    if run.status != ValidationRun.Status.PASSED and not case.accepted_findings.strip():
        return (
            f"'{case}' is passed on validation run #{run.number}, which "
            f"{run.get_status_display().lower()}: link a passed run, or state the accepted "
            "findings."
        )
    later = next(
        (
            f
            for f in failed
            if f.connection_id == run.connection_id
            and (f.created_at, f.pk) > (run.created_at, run.pk)
        ),
        None,
    )
    if later is not None:
        return (
            f"'{case}' is stale: validation run #{later.number} on the same connection failed "
            f"after run #{run.number}; run it again and link a passed run."
        )
    return ""


def needs_reverse_stage(ev: Evidence) -> bool:
    """Reverse-direction tests matter only when data also flows back."""
    bidirectional = Connection.Direction.BIDIRECTIONAL
    return any(c.direction == bidirectional for c in ev.connections) or any(
        m.direction == "bidirectional" for m in getattr(ev, "mappings", ())
    )


def required_stages(ev: Evidence) -> list[TestStage]:
    return [s for s in TestStage if s != TestStage.REVERSE or needs_reverse_stage(ev)]


@dataclass(frozen=True)
class StageSummary:
    stage: TestStage
    required: bool
    cases: int
    passed: int


def stage_summary(ev: Evidence) -> list[StageSummary]:
    """The stage ladder shown on the step-4 page and in the runbook."""
    cases = plan_of(ev).test_cases
    required = set(required_stages(ev))
    return [
        StageSummary(
            stage,
            stage in required,
            sum(c.stage == stage for c in cases),
            sum(c.stage == stage and c.status == TestCase.Status.PASSED for c in cases),
        )
        for stage in TestStage
    ]


def missing_stages(ev: Evidence) -> list[TestStage]:
    present = {c.stage for c in plan_of(ev).test_cases}
    return [s for s in required_stages(ev) if s not in present]


def missing_scenarios(ev: Evidence) -> list[ErrorScenario]:
    present = {c.scenario for c in plan_of(ev).test_cases if c.stage == TestStage.ERRORS}
    return [s for s in REQUIRED_SCENARIOS if s not in present]


def step4_started(ev: Evidence) -> bool:
    plan = plan_of(ev)
    return bool(plan.test_cases or (plan.test_plan and plan.test_plan.parallel_run.strip()))


# Step 5 ---------------------------------------------------------------------------------------


def duplicate_positions(steps: list[RollbackStep]) -> set[int]:
    seen: set[int] = set()
    return {s.position for s in steps if s.position in seen or seen.add(s.position)}


def step5_started(ev: Evidence) -> bool:
    plan = plan_of(ev)
    return bool(plan.deployment or plan.triggers or plan.rollback_steps)


# Step 6 ---------------------------------------------------------------------------------------


def missing_basic_monitors(ev: Evidence) -> list[Monitor.Kind]:
    present = {m.kind for m in plan_of(ev).monitors}
    return [k for k in BASIC_MONITORS if k not in present]


def unmonitored_criteria(ev: Evidence) -> list:
    """Criteria Aethon can watch and no monitor does (one measured outside Aethon is watched
    where it is measured; its dated evidence is what counts)."""
    covered = {m.criterion_id for m in plan_of(ev).monitors}
    return [c for c in ev.criteria if c.pk not in covered and c.metric_key != MetricKey.EXTERNAL]


def step6_started(ev: Evidence) -> bool:
    return bool(plan_of(ev).monitors)


# Step 7 ---------------------------------------------------------------------------------------


def step7_started(ev: Evidence) -> bool:
    plan = plan_of(ev)
    return bool(plan.training or plan.incidents)
