"""The seven steps as one registry: the UI, readiness, sign-offs, the runbook and the API all
walk this list.

Each step carries everything that is particular to it: its title, its readiness rules, the
models its sign-off hashes (`artifacts`), its page and its URL. Adding a rule to a step is
one entry in its `rules`; adding an artifact is one entry in its `artifacts`.

`page` names the step's page builder by dotted path (`planner.steps.<step>.page`): the step
modules are views and sit above this registry, so it names them instead of importing them.
Each of those modules also holds the step's forms and its tables (row kinds).
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.db import models
from django.utils import timezone

from planner.checklist import aftercare, links
from planner.checklist import delivery as plan
from planner.checklist import practices as guides
from planner.checklist.evidence import Evidence
from planner.mapping.checks import duplicate_targets, has_length_check, rule_errors
from planner.models import (
    BackfillPlan,
    ConnectionOwnership,
    DataElement,
    DeploymentPlan,
    ErrorStrategy,
    FieldMapping,
    FreshnessSettings,
    IncidentEntry,
    Monitor,
    Objective,
    PatternDecision,
    PersonalField,
    RollbackStep,
    RollbackTrigger,
    RolloutPhase,
    SecurityReview,
    SuccessCriterion,
    SystemProfile,
    TestCase,
    TestPlan,
    TrainingPlan,
)

MAX_FINDINGS = 10  # per rule: enough to act on, without flooding a 500-row mapping's page


@dataclass(frozen=True)
class Finding:
    """Why a rule fails, with where to fix it: an anchor on the step page or another page."""

    text: str
    anchor: str = ""
    url: str = ""

    @property
    def href(self) -> str:
        return f"{self.url}#{self.anchor}" if self.anchor else self.url


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
    rules: tuple[Rule, ...]
    started: Callable[[Evidence], bool]
    # What the step's sign-off covers: the content of these models is hashed.
    artifacts: tuple[type[models.Model], ...]
    # Dotted path of the page builder: (request, project, ctx, forms) -> None.
    page: str

    def url(self, project_id: int, anchor: str = "") -> str:
        page = links.url("planner:step", project_id, self.number)
        return f"{page}#{anchor}" if anchor else page


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
            f"'{c.metric or 'unnamed'}' needs a metric, the figure that measures it, a target"
            " and a window.",
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


# Step 2 — data mapping.
def _editor(ev: Evidence, connection_id: int) -> str:
    # Kept per evidence object: a big mapping has a finding per row on every readiness.
    editors = ev.__dict__.setdefault("_editor_urls", {})
    if connection_id not in editors:
        editors[connection_id] = links.url("planner:mapping_editor", ev.project.pk, connection_id)
    return editors[connection_id]


def _row_findings(ev: Evidence, failing: Callable, text: Callable) -> list[Finding]:
    found, failed = [], 0
    for m in ev.mappings:
        if failing(m):
            failed += 1
            if failed <= MAX_FINDINGS:  # the rest are only counted
                url = _editor(ev, m.connection_id)
                found.append(Finding(f"{m.connection}: {m} — {text(m)}", f"mapping-{m.pk}", url))
    if failed > MAX_FINDINGS:
        found.append(Finding(f"… and {failed - MAX_FINDINGS} more rows."))
    return found


def _connections_mapped(ev: Evidence) -> list[Finding]:
    if not ev.connections:
        return [Finding("The inventory has no connections to map yet.", url=_inventory(ev))]
    mapped = {m.connection_id for m in ev.mappings}
    return [
        Finding(f"{c} has no mapped fields.", url=_editor(ev, c.pk))
        for c in ev.connections
        if c.pk not in mapped
    ]


def _inventory(ev: Evidence) -> str:
    return links.url("planner:inventory", ev.project.pk)


def _types_stated(ev: Evidence) -> list[Finding]:
    return _row_findings(
        ev, lambda m: not (m.source_type and m.target_type), lambda m: "types missing"
    )


def _transformation_stated(ev: Evidence) -> list[Finding]:
    return _row_findings(
        ev, lambda m: not m.rule.strip(), lambda m: "no transformation (write 'identity')"
    )


def _null_rules(ev: Evidence) -> list[Finding]:
    return _row_findings(ev, lambda m: not m.null_rule, lambda m: "no null rule")


def _conflict_rules(ev: Evidence) -> list[Finding]:
    return _row_findings(
        ev,
        lambda m: m.direction == "bidirectional" and not m.conflict_rule,
        lambda m: "bidirectional without a conflict rule",
    )


def _unique_targets(ev: Evidence) -> list[Finding]:
    duplicates: dict[int, str] = {}
    for c in ev.connections:
        duplicates |= duplicate_targets(ev.mappings_of(c.pk))
    return _row_findings(
        ev,
        lambda m: m.pk in duplicates,
        lambda m: f"target field also mapped from {duplicates[m.pk]}",
    )


def _no_rule_errors(ev: Evidence) -> list[Finding]:
    return _row_findings(
        ev,
        lambda m: bool(rule_errors(m.rule, m.target_type)),
        lambda m: str(rule_errors(m.rule, m.target_type)[0]),
    )


def _length_checked(ev: Evidence) -> list[Finding]:
    return _row_findings(
        ev,
        lambda m: m.max_length and not has_length_check(m.rule, m.max_length),
        lambda m: f"target max length {m.max_length} is not checked by the rule",
    )


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


# Step 4 — incremental test plan (artifacts loaded by planner.checklist.delivery).
def _every_stage_has_case(ev: Evidence) -> list[Finding]:
    return [
        Finding(f"No test case for the stage '{s.label}'.", "cases")
        for s in plan.missing_stages(ev)
    ]


def _cases_have_criteria(ev: Evidence) -> list[Finding]:
    if not plan.plan_of(ev).test_cases:
        # "Every case has a criterion" says nothing when there is no case.
        return [Finding("No test case yet.", "cases")]
    return [
        Finding(f"'{c}' has no pass/fail criterion.", f"testcase-{c.pk}")
        for c in plan.plan_of(ev).test_cases
        if not c.pass_criterion.strip()
    ]


def _error_scenarios(ev: Evidence) -> list[Finding]:
    return [
        Finding(f"No error-scenario case for '{s.label.lower()}'.", "cases")
        for s in plan.missing_scenarios(ev)
    ]


def _cases_passed_with_evidence(ev: Evidence) -> list[Finding]:
    cases = plan.plan_of(ev).test_cases
    if not cases:
        return [Finding("No test case yet.", "cases")]
    out = []
    for c in cases:
        if c.status != c.Status.PASSED:
            out.append(Finding(f"'{c}' is {c.get_status_display().lower()}.", f"testcase-{c.pk}"))
        elif not c.has_evidence:
            out.append(Finding(f"'{c}' passed without evidence.", f"testcase-{c.pk}"))
        elif problem := plan.run_problem_of(c):
            out.append(Finding(problem, f"testcase-{c.pk}"))
    return out


# Step 5 — deployment and rollback.
def _rollback_triggers(ev: Evidence) -> list[Finding]:
    triggers = plan.plan_of(ev).triggers
    if not triggers:
        return [Finding("No rollback trigger yet.", "triggers")]
    return [
        Finding(f"Trigger '{t}' needs a threshold and a window.", f"trigger-{t.pk}")
        for t in triggers
        if not t.is_measurable
    ]


def _rollback_steps(ev: Evidence) -> list[Finding]:
    steps = plan.plan_of(ev).rollback_steps
    if not steps:
        return [Finding("No rollback step yet.", "rollback")]
    shared = plan.duplicate_positions(steps)
    out = [
        Finding(f"Two rollback steps share the order {s.position}.", f"rollbackstep-{s.pk}")
        for s in steps
        if s.position in shared
    ]
    out += [
        Finding(
            f"Rollback step '{s}' needs an owner and an expected duration.", f"rollbackstep-{s.pk}"
        )
        for s in steps
        if not s.owner.strip() or s.expected_minutes is None
    ]
    return out


def _rehearsal_recorded(ev: Evidence) -> list[Finding]:
    d = plan.plan_of(ev).deployment
    if d is None or not d.rehearsed_on or not d.rehearsal_result:
        return [Finding("No rollback rehearsal recorded (date and result).", "deployment")]
    if d.rehearsal_result != d.Rehearsal.SUCCEEDED:
        result = d.get_rehearsal_result_display().lower()
        return [Finding(f"The rehearsal of {d.rehearsed_on:%d %b %Y} {result}.", "deployment")]
    return []


# Step 6 — monitoring.
def _basic_monitors(ev: Evidence) -> list[Finding]:
    return [
        Finding(f"No {k.label.lower()} check yet.", "monitors")
        for k in plan.missing_basic_monitors(ev)
    ]


def _criteria_monitored(ev: Evidence) -> list[Finding]:
    return [
        Finding(f"Success criterion '{c}' has no monitor.", f"uncovered-{c.pk}")
        for c in plan.unmonitored_criteria(ev)
    ]


def _monitors_complete(ev: Evidence) -> list[Finding]:
    return [
        Finding(f"Monitor '{m}' needs a threshold, a window and an alert route.", f"monitor-{m.pk}")
        for m in plan.plan_of(ev).monitors
        if not m.is_complete
    ]


# Step 7 — training and feedback.
def _training_field(attr: str, text: str) -> Callable[[Evidence], list[Finding]]:
    def check(ev: Evidence) -> list[Finding]:
        t = plan.plan_of(ev).training
        return [] if t and getattr(t, attr).strip() else [Finding(text, "training")]

    return check


def _incident_runbook(ev: Evidence) -> list[Finding]:
    if not plan.plan_of(ev).incidents:
        return [Finding("The incident runbook has no entry yet.", "incidents")]
    return []


def _backlog_tied_to_kpis(ev: Evidence) -> list[Finding]:
    return [
        Finding(f"Improvement '{i}' is not tied to a KPI it should move.", f"improvement-{i.pk}")
        for i in aftercare.backlog_of(ev)
        if not (i.criterion_id or i.metric_key)
    ]


def _backlog_reviewed(ev: Evidence) -> list[Finding]:
    """Before go-live there is nothing to review yet; once live the backlog is kept current."""
    since = aftercare.live_since(ev)
    t = plan.plan_of(ev).training
    reviewed = t.backlog_reviewed_on if t else None
    if not aftercare.backlog_review_due(reviewed, since, timezone.localdate()):
        return []
    when = f"last reviewed {reviewed:%d %b %Y}" if reviewed else "not reviewed since the go-live"
    when += f" ({since:%d %b %Y})" if not reviewed else ""
    return [
        Finding(
            f"The project is live and its improvement backlog was {when}: review it "
            f"(at least every {aftercare.BACKLOG_REVIEW_DAYS} days) and record the date.",
            "training",
        )
    ]


# The guides' practices, per connection (planner.checklist.practices).
def _missing_parts(items, records: dict, absent: str, anchor: str) -> list[Finding]:
    """One finding per item whose record is absent or lacks parts (`record.missing`)."""
    out = []
    for item in items:
        record = records.get(item.pk)
        missing = record.missing if record else [absent]
        if missing:
            out.append(Finding(f"{item} has no {', '.join(missing)}.", anchor))
    return out


def _connection_owners(ev: Evidence) -> list[Finding]:
    owners = guides.practices_of(ev).ownerships
    return _missing_parts(ev.connections, owners, "owners", "ownership")


def _error_strategies(ev: Evidence) -> list[Finding]:
    strategies = guides.practices_of(ev).strategies
    out = []
    for c in ev.connections:
        s = strategies.get(c.pk)
        if s is None:
            out.append(Finding(f"{c} has no error-handling strategy.", "error-handling"))
        elif s.missing:
            gaps = ", ".join(s.missing)
            out.append(Finding(f"{c}'s error handling lacks {gaps}.", f"errorstrategy-{s.pk}"))
    return out


def _personal_data_protected(ev: Evidence) -> list[Finding]:
    return [
        Finding(f"{c} carries personal data: it needs {gaps}.", "security")
        for c, gaps in guides.unprotected_personal_data(ev)
    ]


def _error_cases(ev: Evidence) -> list[Finding]:
    return [
        Finding(
            f"No error-scenario case for {guides.class_label(code).lower()} on {s.connection}.",
            "cases",
        )
        for s, code in guides.missing_error_cases(ev)
    ]


def _backfill_plans(ev: Evidence) -> list[Finding]:
    plans = guides.practices_of(ev).backfills
    out = []
    for c in ev.connections:
        b = plans.get(c.pk)
        if b is None:
            out.append(Finding(f"{c} has no backfill plan (or 'no history to move').", "backfill"))
        elif b.missing:
            out.append(Finding(f"{c}'s backfill lacks {', '.join(b.missing)}.", f"backfill-{b.pk}"))
        elif not b.no_history and b.verification_run.status != "passed":
            out.append(
                Finding(
                    f"{c}'s backfill verification run #{b.verification_run.number} "
                    f"{b.verification_run.get_status_display().lower()}.",
                    f"backfill-{b.pk}",
                )
            )
    return out


def _systems_profiled(ev: Evidence) -> list[Finding]:
    profiles = guides.practices_of(ev).profiles
    return _missing_parts(ev.systems, profiles, "discovery profile", "discovery")


def _phased_rollout(ev: Evidence) -> list[Finding]:
    phases = guides.practices_of(ev).phases
    if not phases:
        return [Finding("No rollout phase yet (pilot group or canary first).", "rollout")]
    return [
        Finding(f"Phase '{p}' needs {', '.join(p.missing)}.", f"rolloutphase-{p.pk}")
        for p in phases
        if p.missing
    ]


def _dead_letter_monitor(ev: Evidence) -> list[Finding]:
    if guides.needs_dead_letter_monitor(ev):
        return [
            Finding("Failed records are set aside but nothing watches their volume.", "dead-letter")
        ]
    return []


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
            Rule(
                "systems_profiled",
                "Every system is profiled: API, documentation, authentication, environments",
                _systems_profiled,
            ),
            Rule(
                "connection_owners",
                "Every connection has a data owner, an integration owner and an incident "
                "resolver with a contact",
                _connection_owners,
            ),
        ),
        started=_step1_started,
        artifacts=(
            Objective,
            SuccessCriterion,
            DataElement,
            SystemProfile,
            ConnectionOwnership,
        ),
        page="planner.steps.objectives.page",
    ),
    Step(
        2,
        "mapping",
        "Data mapping",
        "Source and target fields, types, transformations, null rules and conflict rules.",
        rules=(
            Rule("connections_mapped", "Every connection has mapped fields", _connections_mapped),
            Rule("types_stated", "Every row has source and target types", _types_stated),
            Rule(
                "transformation_stated",
                "Every row states its transformation (identity counts)",
                _transformation_stated,
            ),
            Rule("null_rules", "Every row has a null rule", _null_rules),
            Rule(
                "conflict_rules",
                "Every bidirectional row has a conflict rule",
                _conflict_rules,
            ),
            Rule("unique_targets", "No target field is mapped twice", _unique_targets),
            Rule("no_rule_errors", "No transformation rule has an error", _no_rule_errors),
            Rule(
                "length_checked",
                "Target fields with a max length have a length check",
                _length_checked,
            ),
            Rule(
                "error_strategies",
                "Every connection has an error-handling strategy (failure classes, retries, "
                "where failed records go, who is notified)",
                _error_strategies,
            ),
            Rule(
                "personal_data_protected",
                "Every connection carrying personal data has a retention and a security review",
                _personal_data_protected,
            ),
        ),
        started=lambda ev: bool(ev.mappings),
        artifacts=(FieldMapping, ErrorStrategy, SecurityReview, PersonalField, FreshnessSettings),
        page="planner.steps.mapping.views.step2_page",
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
        artifacts=(PatternDecision,),
        page="planner.steps.pattern.page",
    ),
    Step(
        4,
        "testing",
        "Incremental test plan",
        "Connection, one field, one record, a batch, error scenarios, a parallel run.",
        rules=(
            Rule("every_stage_has_case", "Every test stage has a case", _every_stage_has_case),
            Rule(
                "cases_have_criteria",
                "Every case has a pass/fail criterion",
                _cases_have_criteria,
            ),
            Rule(
                "error_scenarios",
                "Error scenarios covered: target down, invalid data, volume spike",
                _error_scenarios,
            ),
            Rule(
                "cases_passed_with_evidence",
                "Every case passed, with evidence",
                _cases_passed_with_evidence,
            ),
            Rule(
                "error_cases",
                "One error-scenario case per failure class of each error-handling strategy",
                _error_cases,
            ),
            Rule(
                "backfill_plans",
                "Every connection has a verified backfill plan, or no history to move (with "
                "the reason)",
                _backfill_plans,
            ),
        ),
        started=plan.step4_started,
        artifacts=(TestPlan, TestCase, BackfillPlan),
        page="planner.steps.testing.page",
    ),
    Step(
        5,
        "deployment",
        "Deployment and rollback",
        "Pipeline, environments, rollout, measurable rollback triggers and rehearsed steps.",
        rules=(
            Rule(
                "rollback_triggers",
                "Measurable rollback triggers (threshold and window)",
                _rollback_triggers,
            ),
            Rule(
                "rollback_steps",
                "Rollback steps in order, each with an owner and a duration",
                _rollback_steps,
            ),
            Rule(
                "rehearsal_recorded",
                "The rollback was rehearsed successfully (date and result)",
                _rehearsal_recorded,
            ),
            Rule(
                "phased_rollout",
                "A phased rollout: each phase has a blast radius, a promotion criterion and a "
                "rollback trigger",
                _phased_rollout,
            ),
        ),
        started=plan.step5_started,
        artifacts=(DeploymentPlan, RollbackTrigger, RollbackStep, RolloutPhase),
        page="planner.steps.deployment.page",
    ),
    Step(
        6,
        "monitoring",
        "Monitoring",
        "Connectivity, throughput, error rate and data quality checks with alert thresholds.",
        rules=(
            Rule(
                "basic_monitors",
                "Connectivity, throughput, error rate and data quality are checked",
                _basic_monitors,
            ),
            Rule(
                "criteria_monitored",
                "Every success criterion of step 1 has a monitor",
                _criteria_monitored,
            ),
            Rule(
                "monitors_complete",
                "Every monitor has a threshold, a window and an alert route",
                _monitors_complete,
            ),
            Rule(
                "dead_letter_monitor",
                "The volume of set-aside failed records is monitored",
                _dead_letter_monitor,
            ),
        ),
        started=plan.step6_started,
        artifacts=(Monitor,),
        page="planner.steps.monitoring.page",
    ),
    Step(
        7,
        "training",
        "Training and feedback",
        "Audiences, materials, an incident runbook, a feedback channel and review schedule.",
        rules=(
            Rule("guide", "A user guide", _training_field("guide", "No user guide yet.")),
            Rule("incident_runbook", "An incident runbook with entries", _incident_runbook),
            Rule(
                "feedback_channel",
                "A feedback channel",
                _training_field("feedback_channel", "No feedback channel yet."),
            ),
            Rule(
                "review_schedule",
                "A review schedule",
                _training_field("review_schedule", "No review schedule yet."),
            ),
            Rule(
                "backlog_kpis",
                "Every backlog improvement is tied to a KPI",
                _backlog_tied_to_kpis,
            ),
            Rule(
                "backlog_reviewed",
                "Once live, the improvement backlog is reviewed at least monthly",
                _backlog_reviewed,
            ),
        ),
        started=plan.step7_started,
        artifacts=(TrainingPlan, IncidentEntry),
        page="planner.steps.training.page",
    ),
)
STEPS_BY_NUMBER = {s.number: s for s in STEPS}
