"""The go-live gate: one verdict, ready or not, with every blocking reason linked to its place.

Reasons come from the same places the rest of the app uses: each step's failing readiness
rules (which include a missing or stale sign-off and a success criterion without a monitor),
each connection's latest validation run (missing, failed, or older than
`AETHON_GOLIVE_MAX_RUN_AGE_DAYS`), and each success criterion judged on those runs' figures by
planner/metrics (no evidence, or missed).
"""

from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from planner.checklist.evidence import Evidence
from planner.checklist.readiness import project_readiness
from planner.metrics import figures as kpis
from planner.models import GoLive, IntegrationProject, RunStage, ValidationRun


@dataclass(frozen=True)
class Reason:
    kind: str  # rule, signoff, run, criterion
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


def _criterion_reasons(project: IntegrationProject, ev: Evidence, latest: dict) -> list[Reason]:
    """Each success criterion against the latest runs' figures: a criterion nothing measured
    (and without recorded manual evidence) blocks, with the reason; so does one missed."""
    runs = [r for r in latest.values() if r.connection_id in {c.pk for c in ev.connections}]
    stages: dict[int, list[RunStage]] = {r.pk: [] for r in runs}
    for stage in RunStage.objects.filter(run_id__in=list(stages)):
        stages[stage.run_id].append(stage)
    measured = kpis.derive(kpis.aggregate([kpis.raw_of_run(r, stages[r.pk]) for r in runs]))
    step_url = reverse("planner:step", args=[project.pk, 1])
    reasons = []
    for c in ev.criteria:
        j = kpis.judge_criterion(c, measured)
        if j.outcome == kpis.MET:
            continue
        if j.outcome == kpis.NO_EVIDENCE:
            text = (
                f"Step 1: '{c.metric}' has no evidence ({j.reason}); run a validation that "
                "measures it, or record manual evidence with its date."
            )
        else:
            text = f"Step 1: '{c.metric}' is missed: measured {j.value:g} {j.unit}, target {c}."
        reasons.append(Reason("criterion", text, f"{step_url}#criterion-{c.pk}", 1))
    return reasons


def latest_runs(project: IntegrationProject) -> dict[int, ValidationRun]:
    """Each connection's latest finished validation run, by connection id."""
    latest: dict[int, ValidationRun] = {}
    finished = ValidationRun.objects.filter(project=project, kind="validation").exclude(
        status__in=ValidationRun.ACTIVE
    )
    for run in finished.order_by("-created_at", "-pk").only(
        "pk", "connection_id", "status", "finished_at", "created_at", "error", "project_id"
    ):
        latest.setdefault(run.connection_id, run)
    return latest


def _run_reasons(project: IntegrationProject, ev: Evidence, latest: dict) -> list[Reason]:
    runs_page = reverse("planner:runs", args=[project.pk])
    oldest_ok = timezone.now() - max_run_age()
    reasons = []
    for c in ev.connections:
        run = latest.get(c.pk)
        if run is None:
            reasons.append(
                Reason("run", f"{c}: no validation run yet.", f"{runs_page}#connection-{c.pk}")
            )
            continue
        href = reverse("planner:run_show", args=[project.pk, run.pk])
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


def verdict(project: IntegrationProject, evidence: Evidence | None = None) -> Verdict:
    ev = evidence or Evidence.load(project)
    readiness = project_readiness(project, ev)
    reasons: list[Reason] = []
    for sr in readiness.steps:
        step_url = sr.step.url(project.pk)
        for outcome in sr.outcomes:
            if outcome.passed:
                continue
            kind = "signoff" if outcome.rule.code == "signed_off" else "rule"
            for f in outcome.findings:
                href = f.href if f.url else f"{step_url}#{f.anchor}" if f.anchor else step_url
                reasons.append(
                    Reason(kind, f"Step {sr.step.number}: {f.text}", href, sr.step.number)
                )
    latest = latest_runs(project)
    reasons += _run_reasons(project, ev, latest)
    reasons += _criterion_reasons(project, ev, latest)
    live = GoLive.objects.current().filter(project=project).select_related("user").first()
    return Verdict(not reasons, readiness.percent, reasons, live)
