"""The go-live gate: one verdict, ready or not, with every blocking reason linked to its place.

Reasons come from the same places the rest of the app uses: each step's failing readiness
rules (which include a missing or stale sign-off and a success criterion without a monitor),
each connection's latest validation run (missing, failed, or older than
`AETHON_GOLIVE_MAX_RUN_AGE_DAYS`), and each success criterion judged on those runs' figures by
planner/metrics (no evidence, or missed).
"""

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from planner.checklist import links
from planner.checklist.delivery import plan_of
from planner.checklist.evidence import Evidence
from planner.checklist.readiness import ProjectReadiness, current_many, project_readiness
from planner.checklist.standing import stored as stored_standings
from planner.metrics import figures as kpis
from planner.metrics import slo
from planner.models import GoLive, IntegrationProject, RunStage, SuccessCriterion, ValidationRun


@dataclass(frozen=True)
class Reason:
    kind: str  # rule, signoff, run, criterion, parallel_run
    text: str
    href: str
    step: int | None = None


@dataclass
class Verdict:
    ready: bool
    percent: int
    reasons: list[Reason] = field(default_factory=list)
    live: GoLive | None = None

    @property
    def label(self) -> str:
        return "Ready to go live" if self.ready else "Not ready to go live"

    def as_dict(self) -> dict:
        return {
            "ready": self.ready,
            "percent": self.percent,
            "reasons": [asdict(r) for r in self.reasons],
            "live": self.live is not None,
            "live_since": self.live.created_at.isoformat() if self.live else None,
        }


def max_run_age() -> timedelta:
    return timedelta(days=float(getattr(settings, "AETHON_GOLIVE_MAX_RUN_AGE_DAYS", 7)))


@dataclass
class GateFacts:
    """What the verdict reads about one project beyond its readiness, loaded for many projects
    at once by `_gate_facts`."""

    latest: dict[int, ValidationRun]  # each connection's latest finished validation run
    stages: dict[int, list[RunStage]]  # the stages of those runs, by run id
    compliance: dict[int, slo.Compliance]  # criteria judged by compliance, over their window
    gate: tuple[SuccessCriterion, int, slo.Compliance] | None  # the parallel run's gate
    live: GoLive | None


def _criterion_reasons(project: IntegrationProject, ev: Evidence, facts: GateFacts) -> list[Reason]:
    """Each success criterion against the latest runs' figures: a criterion nothing measured
    (and without recorded manual evidence) blocks, with the reason; so does one missed."""
    connected = {c.pk for c in ev.connections}
    runs = [r for r in facts.latest.values() if r.connection_id in connected]
    measured = kpis.derive(kpis.aggregate([kpis.raw_of_run(r, facts.stages[r.pk]) for r in runs]))
    reasons = []
    for c in ev.criteria:
        j = kpis.judge_criterion(c, measured, facts.compliance.get(c.pk))
        if j.outcome == kpis.MET:
            continue
        if j.outcome == kpis.NO_EVIDENCE:
            text = (
                f"Step 1: '{c.metric}' has no evidence ({j.reason}); run a validation that "
                "measures it, or record manual evidence with its date."
            )
        else:
            text = f"Step 1: '{c.metric}' is missed: measured {j.value:g} {j.unit}, target {c}."
        step_url = links.url("planner:step", project.pk, 1)
        reasons.append(Reason("criterion", text, f"{step_url}#criterion-{c.pk}", 1))
    return reasons


def latest_runs(project: IntegrationProject) -> dict[int, ValidationRun]:
    """Each connection's latest finished validation run, by connection id."""
    return latest_runs_many([project.pk])[project.pk]


def latest_runs_many(project_ids: list[int]) -> dict[int, dict[int, ValidationRun]]:
    """Each project's latest finished validation run per connection, in one query: only the
    newest run of each connection is read, however many runs it had."""
    finished = ValidationRun.objects.filter(project_id__in=project_ids, kind="validation").exclude(
        status__in=ValidationRun.ACTIVE
    )
    ranked = finished.annotate(
        rank=Window(
            RowNumber(),
            partition_by=[F("project_id"), F("connection_id")],
            order_by=[F("created_at").desc(), F("pk").desc()],
        )
    ).filter(rank=1)
    out: dict[int, dict[int, ValidationRun]] = {pk: {} for pk in project_ids}
    for run in ranked.order_by("-created_at", "-pk").only(
        "pk",
        "number",
        "connection_id",
        "status",
        "finished_at",
        "created_at",
        "error",
        "project_id",
    ):
        out[run.project_id][run.connection_id] = run
    return out


def _run_reasons(
    project: IntegrationProject, ev: Evidence, latest: dict, now: datetime
) -> list[Reason]:
    runs_page = links.url("planner:runs", project.pk)
    oldest_ok = now - max_run_age()
    reasons = []
    for c in ev.connections:
        run = latest.get(c.pk)
        if run is None:
            reasons.append(
                Reason("run", f"{c}: no validation run yet.", f"{runs_page}#connection-{c.pk}")
            )
            continue
        href = links.url("planner:run_show", project.pk, run.pk)
        when = run.finished_at or run.created_at
        if run.status != ValidationRun.Status.PASSED:
            reasons.append(
                Reason(
                    "run",
                    f"{c}: the latest validation run (#{run.number}) "
                    f"{run.get_status_display().lower()}"
                    + (f": {run.error}" if run.error else "."),
                    href,
                )
            )
        elif when < oldest_ok:
            days = max_run_age().days
            reasons.append(
                Reason(
                    "run",
                    f"{c}: the latest validation run (#{run.number}, {when:%d %b %Y}) is older "
                    f"than {days} days; run it again.",
                    href,
                )
            )
    return reasons


def _gate_of(ev: Evidence) -> tuple[SuccessCriterion, int] | None:
    """The parallel run's gate (step 4): the criterion and over how many days, if set."""
    plan = plan_of(ev).test_plan
    if plan is None or plan.gate_criterion_id is None or not plan.gate_days:
        return None
    criterion = next((c for c in ev.criteria if c.pk == plan.gate_criterion_id), None)
    return (criterion or plan.gate_criterion), plan.gate_days


def parallel_run_reasons(project: IntegrationProject, facts: GateFacts) -> list[Reason]:
    """The parallel run's compliance gate (step 4): the named criterion must meet its objective
    over the last N days, measured over at least the minimum coverage of those days."""
    if facts.gate is None:
        return []
    c, days, result = facts.gate
    head = (
        f"Step 4: the parallel run must meet '{c.metric}' over the last {days} days before cut-over"
    )
    if result.state == slo.MET:
        return []
    if result.state == slo.NO_OBJECTIVE:
        text = f"{head}, but the criterion states no attainment % to judge it by."
    elif result.state == slo.MISSED:
        text = (
            f"{head}: it is missed, compliance {result.attainment_pct:g}% against the "
            f"objective of {result.objective_text}."
        )
    else:
        text = (
            f"{head}: not enough data yet, {result.coverage_pct:g}% of those days measured "
            f"(at least {slo.min_coverage_pct():g}% needed)."
        )
    href = links.url("planner:criterion_service_level", project.pk, c.pk)
    return [Reason("parallel_run", text, href, 4)]


def _removed_gate_reasons(project: IntegrationProject, ev: Evidence) -> list[Reason]:
    """A gate whose criterion was deleted still asks for its days: removing the criterion must
    not lift the gate unnoticed (the step-4 form refuses a gate without one)."""
    plan = plan_of(ev).test_plan
    if plan is None or plan.gate_criterion_id is not None or not plan.gate_days:
        return []
    text = (
        f"Step 4: the parallel run requires compliance over the last {plan.gate_days} days, "
        "but its criterion was removed; pick the criterion it must meet, or clear the gate."
    )
    return [Reason("parallel_run", text, links.url("planner:step", project.pk, 4), 4)]


def _lives(ids: list[int]) -> dict[int, GoLive]:
    """The go-live in force of each of these projects that has one, by project id."""
    lives: dict[int, GoLive] = {}
    for live in GoLive.objects.current().filter(project_id__in=ids).select_related("user"):
        lives.setdefault(live.project_id, live)  # newest first
    return lives


def _gate_facts(
    evidences: list[Evidence], now: datetime, lives: dict[int, GoLive] | None = None
) -> dict[int, GateFacts]:
    """Runs, stages, compliance and go-lives (unless given) of many projects: the same
    queries for one."""
    ids = [ev.project.pk for ev in evidences]
    latest = latest_runs_many(ids)
    counted = [
        run.pk
        for ev in evidences
        for c in ev.connections
        if (run := latest[ev.project.pk].get(c.pk)) is not None
    ]
    stages: dict[int, list[RunStage]] = {pk: [] for pk in counted}
    for stage in RunStage.objects.filter(run_id__in=counted):
        stages[stage.run_id].append(stage)
    judged = [
        (c, now - slo.window_of(c))
        for ev in evidences
        for c in ev.criteria
        if c.target is not None and slo.judged_by_compliance(c)
    ]
    gates = {ev.project.pk: gate for ev in evidences if (gate := _gate_of(ev)) is not None}
    gate_compliance = slo.compliances(
        [(c, now - timedelta(days=days)) for c, days in gates.values()], end=now
    )
    lives = _lives(ids) if lives is None else lives
    compliance = slo.compliances(judged, end=now)
    return {
        pk: GateFacts(
            latest=latest[pk],
            stages=stages,
            compliance=compliance,
            gate=(*gates[pk], gate_compliance[gates[pk][0].pk]) if pk in gates else None,
            live=lives.get(pk),
        )
        for pk in ids
    }


def _readiness_reasons(
    project: IntegrationProject, readiness: ProjectReadiness
) -> Iterator[Reason]:
    """Each finding of each failing readiness rule (a missing or stale sign-off included)."""
    for sr in readiness.steps:
        step_url = None
        for outcome in sr.outcomes:
            if outcome.passed:
                continue
            step_url = step_url or sr.step.url(project.pk)
            kind = "signoff" if outcome.rule.code == "signed_off" else "rule"
            for f in outcome.findings:
                href = f.href if f.url else f"{step_url}#{f.anchor}" if f.anchor else step_url
                yield Reason(kind, f"Step {sr.step.number}: {f.text}", href, sr.step.number)


def _gate_reasons(
    project: IntegrationProject, ev: Evidence, facts: GateFacts, now: datetime
) -> list[Reason]:
    """What blocks go-live beyond readiness: the latest runs, the criteria, the parallel run."""
    return (
        _run_reasons(project, ev, facts.latest, now)
        + _criterion_reasons(project, ev, facts)
        + parallel_run_reasons(project, facts)
        + _removed_gate_reasons(project, ev)
    )


def _verdict(
    project: IntegrationProject,
    ev: Evidence,
    readiness: ProjectReadiness,
    facts: GateFacts,
    now: datetime,
) -> Verdict:
    reasons = [*_readiness_reasons(project, readiness), *_gate_reasons(project, ev, facts, now)]
    return Verdict(not reasons, readiness.percent, reasons, facts.live)


def verdict(
    project: IntegrationProject, evidence: Evidence | None = None, now: datetime | None = None
) -> Verdict:
    ev = evidence or Evidence.load(project)
    now = now or timezone.now()
    facts = _gate_facts([ev], now)[project.pk]
    return _verdict(project, ev, project_readiness(project, ev), facts, now)


def verdicts(projects: list[IntegrationProject], now: datetime | None = None) -> dict[int, Verdict]:
    """The verdict of each project, by id, in a fixed number of queries however many projects
    (the portfolio dashboard, the API's project list): each project's evidence and readiness
    as project pages keep them (`readiness.current_many`: computed again only for projects
    written since), what the gate reads loaded once for all, then each verdict is `verdict`'s
    own computation."""
    now = now or timezone.now()
    kept = current_many(projects)
    facts = _gate_facts([ev for ev, _ in kept.values()], now)
    return {
        pk: _verdict(ev.project, ev, readiness, facts[pk], now)
        for pk, (ev, readiness) in kept.items()
    }


@dataclass(frozen=True)
class Standing:
    """What a list of projects shows of each one's verdict: ready or not, the readiness
    percent, and the go-live in force if any."""

    ready: bool
    percent: int
    live: GoLive | None


def standings(
    projects: list[IntegrationProject], now: datetime | None = None
) -> dict[int, Standing]:
    """Each project's standing, by id (the portfolio dashboard, the API's project list): the
    verdict's own readiness and reasons, in a fixed number of queries however many projects.

    A project with a failing readiness rule is not ready whatever its runs and criteria say,
    so only the projects whose readiness passes need the gate's facts (latest runs, their
    stages, compliance): those are loaded for them alone. A project written through the write
    path since its last change has its standing stored (`planner.checklist.standing`): when
    that says blocked, none of its rows are read. The others' readiness is kept per revision
    (`readiness.current_many`), so a request after no change reads no step's rows."""
    now = now or timezone.now()
    kept_rows = stored_standings([p.pk for p in projects])
    blocked = {pk for pk, row in kept_rows.items() if row.blocked}
    kept = current_many([p for p in projects if p.pk not in blocked])
    lives = _lives([p.pk for p in projects])
    unblocked = [ev for ev, readiness in kept.values() if not readiness.blocked]
    facts = _gate_facts(unblocked, now, lives)
    out = {pk: Standing(False, kept_rows[pk].percent, lives.get(pk)) for pk in blocked}
    for pk, (ev, readiness) in kept.items():
        ready = pk in facts and not _gate_reasons(ev.project, ev, facts[pk], now)
        out[pk] = Standing(ready, readiness.percent, lives.get(pk))
    return out
