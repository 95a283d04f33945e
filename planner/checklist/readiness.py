"""Each step's and the project's readiness, computed from evidence.

A step is complete only when its rules pass and its required sign-offs are fresh: the sign-off
requirement joins the step's outcomes as one more rule (so it counts in the fraction and shows
in the rule list), and a step whose own rules all pass but whose sign-off is missing or stale
is "awaiting sign-off".
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from planner.checklist import revision
from planner.checklist.aftercare import load_backlogs, load_live_since
from planner.checklist.delivery import load_plans
from planner.checklist.evidence import Evidence
from planner.checklist.practices import load_practices
from planner.checklist.registry import STEPS, Finding, Rule, Step
from planner.checklist.signoff import StepSignOff, load_signoff_states, step_signoff
from planner.models import IntegrationProject

NOT_STARTED = "not_started"
IN_PROGRESS = "in_progress"
COMPLETE = "complete"
AWAITING_SIGN_OFF = "awaiting_sign_off"
STATE_LABELS = {
    NOT_STARTED: "Not started",
    IN_PROGRESS: "In progress",
    COMPLETE: "Complete",
    AWAITING_SIGN_OFF: "Awaiting sign-off",
}


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    findings: list[Finding]

    @property
    def passed(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class StepReadiness:
    step: Step
    state: str
    outcomes: list[RuleOutcome]
    signoff: StepSignOff | None = None

    @property
    def fraction(self) -> float:
        # A step nobody has touched contributes nothing, even if some rules pass vacuously.
        if self.state == NOT_STARTED or not self.outcomes:
            return 0.0
        return sum(o.passed for o in self.outcomes) / len(self.outcomes)

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def passed_count(self) -> int:
        return sum(o.passed for o in self.outcomes)


@dataclass(frozen=True)
class ProjectReadiness:
    steps: list[StepReadiness]

    @property
    def percent(self) -> int:
        return round(100 * sum(s.fraction for s in self.steps) / len(self.steps))

    @property
    def blocked(self) -> bool:
        """A rule of some step fails (a missing or stale sign-off included): the project is
        not ready to go live, whatever its runs say."""
        return any(not o.passed for s in self.steps for o in s.outcomes)

    def for_step(self, number: int) -> StepReadiness:
        return next(s for s in self.steps if s.step.number == number)


def step_readiness(step: Step, evidence: Evidence) -> StepReadiness:
    outcomes = [RuleOutcome(rule, rule.check(evidence)) for rule in step.rules]
    content_ready = all(o.passed for o in outcomes)
    signoff = step_signoff(step.number, evidence)
    if signoff.required:
        outcomes.append(RuleOutcome(signoff.rule, signoff.findings))
    if not step.started(evidence):
        state = NOT_STARTED
    elif all(o.passed for o in outcomes):
        state = COMPLETE
    elif content_ready:
        state = AWAITING_SIGN_OFF
    else:
        state = IN_PROGRESS
    return StepReadiness(step, state, outcomes, signoff)


def prefetch(evidences: list[Evidence]) -> None:
    """Load, for many projects at once, everything the rules read beyond the evidence itself
    (steps 4-7, the practices, sign-offs, the go-live date, the backlog): each module's cache
    is filled by the loader its single-project accessor uses, so readiness computed after
    this reads the same rows in a fixed number of queries, however many projects."""
    load_plans(evidences)
    load_practices(evidences)
    load_signoff_states(evidences)
    load_live_since(evidences)
    load_backlogs(evidences)


def project_readiness(
    project: IntegrationProject, evidence: Evidence | None = None
) -> ProjectReadiness:
    evidence = evidence or Evidence.load(project)
    return ProjectReadiness([step_readiness(step, evidence) for step in STEPS])


# (project id, revision with its token, day) -> (evidence, readiness), newest last; per process.
# Room for a portfolio dashboard's projects as well as the pages of the projects worked on.
_KEPT: OrderedDict[tuple, tuple[Evidence, ProjectReadiness]] = OrderedDict()
_KEPT_MAX = 128
_KEPT_LOCK = threading.Lock()


def current(project: IntegrationProject) -> tuple[Evidence, ProjectReadiness]:
    """The project's evidence and readiness, computed once per revision and day.

    Every project page shows the readiness of the whole project (the navigator), which reads
    every step's rows: about twenty queries. They are computed again only when the project's
    revision (`planner.checklist.revision`: moved by every committed write to its rows, with
    a token drawn at each count, so a number repeated after a restore is not the same key) or the
    day (one rule asks for a review every so many days) has changed. The revision is read
    before the rows, so a value kept under a revision is never older than that revision.
    Inside a transaction nothing is kept or reused: its own writes are not counted until it
    commits, and it may roll back. What is kept is shared by the requests of this process:
    callers read it and never change it.
    """
    if connection.in_atomic_block:
        evidence = Evidence.load(project)
        return evidence, project_readiness(project, evidence)
    return current_keyed(project)[1]


def current_keyed(
    project: IntegrationProject,
) -> tuple[tuple, tuple[Evidence, ProjectReadiness]]:
    """`current` outside a transaction, with the key it is kept under: (project id,
    revision, day), the revision read before the rows."""
    key = (project.pk, revision.current(project.pk), timezone.localdate())
    kept = _kept([key]).get(project.pk)
    if kept is None:
        evidence = Evidence.load(project)
        kept = evidence, project_readiness(project, evidence)
        _keep({key: kept})
    return key, kept


def current_many(
    projects: list[IntegrationProject],
) -> dict[int, tuple[Evidence, ProjectReadiness]]:
    """`current` for many projects (the portfolio dashboard), by project id, in a fixed number
    of queries: one for every revision, then the projects whose kept value is missing or older
    are loaded together (`Evidence.load_many` and `prefetch`) and kept."""
    if connection.in_atomic_block:
        return _compute(projects)
    day = timezone.localdate()
    now = revision.current_many([p.pk for p in projects])
    keys = {p.pk: (p.pk, now[p.pk], day) for p in projects}
    out = _kept(list(keys.values()))
    missing = [p for p in projects if p.pk not in out]
    if missing:
        computed = _compute(missing)
        _keep({keys[pk]: kept for pk, kept in computed.items()})
        out |= computed
    return out


def _compute(projects: list[IntegrationProject]) -> dict[int, tuple[Evidence, ProjectReadiness]]:
    evidences = Evidence.load_many(projects)
    prefetch(list(evidences.values()))
    return {pk: (ev, project_readiness(ev.project, ev)) for pk, ev in evidences.items()}


def _kept(keys: list[tuple]) -> dict[int, tuple[Evidence, ProjectReadiness]]:
    """What is kept under these keys, by project id (the keys found become the newest)."""
    out = {}
    with _KEPT_LOCK:
        for key in keys:
            kept = _KEPT.get(key)
            if kept is not None:
                _KEPT.move_to_end(key)
                out[key[0]] = kept
    return out


def _keep(values: dict[tuple, tuple[Evidence, ProjectReadiness]]) -> None:
    with _KEPT_LOCK:
        _KEPT.update(values)
        for key in values:
            _KEPT.move_to_end(key)
        while len(_KEPT) > _KEPT_MAX:
            _KEPT.popitem(last=False)
