"""The go-live gate: one verdict, ready or not, with every blocking reason linked to its place.

Reasons come from the same places the rest of the app uses: each step's failing readiness
rules (which include a missing or stale sign-off and a success criterion without a monitor),
and each connection's latest validation run (missing, failed, or older than
`AETHON_GOLIVE_MAX_RUN_AGE_DAYS`).
"""

from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from planner.checklist.evidence import Evidence
from planner.checklist.readiness import project_readiness
from planner.models import GoLive, IntegrationProject, ValidationRun


@dataclass(frozen=True)
class Reason:
    kind: str  # rule, signoff, run
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


def _run_reasons(project: IntegrationProject, ev: Evidence) -> list[Reason]:
    runs_page = reverse("planner:runs", args=[project.pk])
    latest = latest_runs(project)
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
                    f"{c}: the latest validation run (#{run.pk}) {run.get_status_display().lower()}"
                    + (f": {run.error}" if run.error else "."),
                    href,
                )
            )
        elif when < oldest_ok:
            days = max_run_age().days
            reasons.append(
                Reason(
                    "run",
                    f"{c}: the latest validation run (#{run.pk}, {when:%d %b %Y}) is older "
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
    reasons += _run_reasons(project, ev)
    live = GoLive.objects.current().filter(project=project).select_related("user").first()
    return Verdict(not reasons, readiness.percent, reasons, live)
