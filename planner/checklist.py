"""The seven steps as data: the UI, readiness, the runbook and the API all walk this list.

Adding a rule to a step is one entry in its `rules`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from .evidence import Evidence


@dataclass(frozen=True)
class Finding:
    """Why a rule fails, with an anchor on the step page to jump to."""

    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Rule:
    code: str
    text: str
    check: Callable[[Evidence], list[Finding]]


@dataclass(frozen=True)
class Step:
    number: int
    slug: str
    title: str
    summary: str
    available: bool = True
    rules: tuple[Rule, ...] = ()
    started: Callable[[Evidence], bool] = field(default=lambda ev: False)


# Step 1 — objectives and measurable success criteria.
def _objective_stated(ev: Evidence) -> list[Finding]:
    if ev.objective and ev.objective.business_objective.strip():
        return []
    return [Finding("No business objective yet.", "objective")]


def _has_criterion(ev: Evidence) -> list[Finding]:
    return [] if ev.criteria else [Finding("No success criterion yet.", "criteria")]


def _criteria_measurable(ev: Evidence) -> list[Finding]:
    return [
        Finding(
            f"'{c.metric or 'unnamed'}' needs a metric, a target and a window.",
            f"criterion-{c.pk}",
        )
        for c in ev.criteria
        if not c.is_measurable
    ]


def _sources_of_truth(ev: Evidence) -> list[Finding]:
    if not ev.data_elements:
        return [Finding("No data element listed yet.", "elements")]
    return [
        Finding(f"'{e.name}' has no source of truth.", f"element-{e.pk}")
        for e in ev.data_elements
        if e.source_of_truth is None
    ]


def _step1_started(ev: Evidence) -> bool:
    has_objective = ev.objective is not None and (
        ev.objective.business_objective.strip() or ev.objective.stakeholders_consulted.strip()
    )
    return bool(has_objective or ev.criteria or ev.data_elements)


# Step 3 — integration pattern.
def _two_systems(ev: Evidence) -> list[Finding]:
    if len(ev.systems) >= 2:
        return []
    return [Finding("The inventory needs at least two systems.", "inventory")]


def _decision_with_rationale(ev: Evidence) -> list[Finding]:
    d = ev.decision
    if d is None or not d.pattern:
        return [Finding("No pattern chosen yet.", "decision")]
    if not d.rationale.strip():
        return [Finding("The decision has no rationale.", "decision")]
    return []


def _step3_started(ev: Evidence) -> bool:
    d = ev.decision
    return bool(d and (d.pattern or d.rationale.strip() or d.tools.strip()))


STEPS: tuple[Step, ...] = (
    Step(
        1,
        "objectives",
        "Objectives and success criteria",
        "What the integration must achieve, measured: metric, target and window.",
        rules=(
            Rule("objective_stated", "The business objective is stated", _objective_stated),
            Rule("has_criterion", "At least one success criterion", _has_criterion),
            Rule(
                "criteria_measurable",
                "Every criterion is measurable (metric, target, window)",
                _criteria_measurable,
            ),
            Rule(
                "sources_of_truth",
                "Every data element has a source of truth",
                _sources_of_truth,
            ),
        ),
        started=_step1_started,
    ),
    Step(
        2,
        "mapping",
        "Data mapping",
        "Source and target fields, types, transformations, null rules and conflict rules.",
        available=False,
    ),
    Step(
        3,
        "pattern",
        "Integration pattern",
        "Point-to-point, hub-and-spoke or API gateway, chosen from the system inventory.",
        rules=(
            Rule("two_systems", "The inventory lists at least two systems", _two_systems),
            Rule(
                "decision_with_rationale",
                "A pattern is chosen, with its rationale",
                _decision_with_rationale,
            ),
        ),
        started=_step3_started,
    ),
    Step(
        4,
        "testing",
        "Incremental test plan",
        "Connection, one field, one record, a batch, error scenarios, a parallel run.",
        available=False,
    ),
    Step(
        5,
        "deployment",
        "Deployment and rollback",
        "Pipeline, environments, rollout, measurable rollback triggers and rehearsed steps.",
        available=False,
    ),
    Step(
        6,
        "monitoring",
        "Monitoring",
        "Connectivity, throughput, error rate and data quality checks with alert thresholds.",
        available=False,
    ),
    Step(
        7,
        "training",
        "Training and feedback",
        "Audiences, materials, an incident runbook, a feedback channel and review schedule.",
        available=False,
    ),
)
STEPS_BY_NUMBER = {s.number: s for s in STEPS}
