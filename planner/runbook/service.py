"""The project's runbook: one document (HTML preview and WeasyPrint PDF) from templates/runbook/.

`runbook_context` gathers everything in a fixed number of queries; `render_pdf` lays it out;
`run_export` produces a stored `RunbookExport` with its progress in the database, inline for a
small project or from the Celery task in planner/runbook/tasks.py for a big one.
"""

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.core.files.base import ContentFile
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from planner.checklist import aftercare
from planner.checklist.audit import recent_changes
from planner.checklist.delivery import plan_of, stage_summary
from planner.checklist.evidence import Evidence
from planner.checklist.governance import go_live_dates, next_architecture_review
from planner.checklist.patterns import analyse
from planner.checklist.practices import class_label, practices_of
from planner.checklist.readiness import project_readiness
from planner.checklist.registry import STEPS
from planner.checklist.signoff import project_hash, signoff_log, signoff_states, step_hashes
from planner.metrics import plots
from planner.models import (
    FieldMapping,
    FreshnessSettings,
    IntegrationProject,
    RunbookExport,
    TestCase,
)
from planner.models.testing import TestStage
from planner.pdf import fewer_collections, no_fetching
from planner.reviews.schedule import cadence_text, dates_in_force, in_force
from planner.task_queue import QueueUnreachable, publish
from planner.teamwork.comments import change_log

log = logging.getLogger(__name__)

# Above this many mapping rows + test cases the PDF is made by a Celery worker, with progress.
BIG_PROJECT_ROWS = 150
CHANGE_LOG_ENTRIES = 100
# An export whose heartbeat stopped (worker killed, machine lost) is failed, never left running.
RUNNING_TIMEOUT = timedelta(minutes=6)
QUEUED_TIMEOUT = timedelta(minutes=15)
MAX_ATTEMPTS = 2  # a redelivered task (worker lost mid-way) gets one more try
QUEUE_UNREACHABLE = (
    "The task queue is unreachable, so this big runbook could not be handed to a worker. "
    "Try again later; the preview needs no worker and works meanwhile."
)

Progress = Callable[[int, str], None]


def _dec(value) -> str:
    return "" if value is None else f"{value.normalize():f}"


def mapping_cells(m: FieldMapping) -> list[str]:
    """A mapping row as the runbook prints it: three plain-text cells holding every field.

    Three cells rather than one per field, and no markup inside them: WeasyPrint's layout
    cost follows the number of boxes (every cell costs about as much as a line of text, even
    an empty one), and the mapping is most of a big runbook (benchmarks/runbook.py). Source
    and target share a cell, as "source → target", the way a mapping reads.
    """
    source = m.source_field + (f" ({m.source_type})" if m.source_type else "")
    target_type = m.target_type + (f" ({m.max_length})" if m.max_length else "")
    target = m.target_field + (f" ({target_type})" if target_type else "")
    if m.required:
        target += ", required"
    nulls = m.get_null_rule_display().lower() if m.null_rule else "no rule"
    if m.null_rule == FieldMapping.NullRule.DEFAULT:
        nulls = f"default '{m.null_default}'"
    sync = m.get_frequency_display().lower()
    if m.frequency == FieldMapping.Frequency.MINUTES and m.every_minutes:
        sync = f"every {m.every_minutes} min"
    truth = m.get_source_of_truth_display().lower()
    if m.conflict_rule:
        truth += f"; {m.get_conflict_rule_display().lower()}"
    rules = [
        f"Nulls: {nulls}",
        f"tolerance: {m.tolerance or 'exact'}",
        f"{m.get_direction_display().lower()}, {sync}",
        f"truth: {truth}",
    ]
    if m.notes:
        rules.append(f"notes: {m.notes}")
    return [f"{source} → {target}", m.rule, " · ".join(rules)]


MAPPING_HEADERS = (
    "Source field → target field (types)",
    "Transformation",
    "Nulls, tolerance, direction and sync, source of truth, notes",
)


def runbook_context(project: IntegrationProject) -> dict:
    """Everything the runbook shows. A fixed number of queries, whatever the row counts."""
    ev = Evidence.load(project)
    readiness = project_readiness(project, ev)
    states = signoff_states(ev)
    # The sign-off states already hold every signed step's hash; the others are read once.
    hashes = {n: s.known_hash for n, s in states.items() if s.known_hash}
    hashes |= step_hashes(project, [n for n in states if n not in hashes])
    plan = plan_of(ev)
    by_connection: dict[int, list] = {}
    for m in sorted(ev.mappings, key=lambda m: (m.position, m.pk)):
        by_connection.setdefault(m.connection_id, []).append(mapping_cells(m))
    cases_by_stage = [
        (stage, [c for c in plan.test_cases if c.stage == stage]) for stage in TestStage
    ]
    criteria = {c.pk: c for c in ev.criteria}
    for monitor in plan.monitors:
        monitor.criterion = criteria.get(monitor.criterion_id)
    signoffs = signoff_log(project)
    reviews = in_force(project)
    for s in signoffs:
        s.fresh = not hasattr(s, "stale_event") and s.content_hash == hashes[s.step]
        state = states[s.step]
        sig = next((g for g in state.latest if g.signoff.pk == s.pk), None)
        # "Approved" only for an approval that counts; an older decision of the same signer
        # has been superseded or went stale.
        s.decision_label = (
            state.decision_label(sig)
            if sig
            else (
                "Approval no longer counts"
                if s.decision == s.Decision.APPROVE
                else s.get_decision_display()
            )
        )
    return {
        "project": project,
        "generated_at": timezone.now(),
        "version": project_hash(hashes),
        "step_hashes": hashes,
        "readiness": readiness,
        "steps": [
            {
                "step": s,
                "readiness": readiness.for_step(s.number),
                "signoff": states[s.number],
                "hash": hashes[s.number],
            }
            for s in STEPS
        ],
        "ev": ev,
        "plan": plan,
        "analysis": analyse(ev.systems, ev.connections),
        "mapping_headers": MAPPING_HEADERS,
        "mappings": [(c, by_connection.get(c.pk, [])) for c in ev.connections],
        "mapping_count": len(ev.mappings),
        "stages": stage_summary(ev),
        "practices": practices_by_connection(ev),
        "freshness": list(
            FreshnessSettings.objects.filter(project=project).select_related(
                "connection__source", "connection__target"
            )
        ),
        "system_profiles": [(s, practices_of(ev).profiles.get(s.pk)) for s in ev.systems],
        "rollout_phases": practices_of(ev).phases,
        "backlog": aftercare.backlog_of(ev),
        "changelog": aftercare.changelog_of(ev),
        "architecture_review": next_architecture_review(
            go_live_dates([project.pk]).get(project.pk), timezone.localdate()
        ),
        "cases_by_stage": cases_by_stage,
        "review_cadence": cadence_text(reviews),
        "review_dates": dates_in_force(
            project, plan.training.go_live_on if plan.training else None, reviews
        ),
        "signoffs": signoffs,
        "service_levels": plots.service_levels(ev.criteria),
        "changes": recent_changes(project, limit=CHANGE_LOG_ENTRIES),
        "resolved_by_change": change_log(project),
    }


def practices_by_connection(ev: Evidence) -> list[dict]:
    """Per connection: its owners, error handling, security review, personal fields, backfill."""
    p = practices_of(ev)

    def labels(codes: list[str]) -> str:
        return ", ".join(class_label(code).lower() for code in codes)

    return [
        {
            "connection": c,
            "owners": p.ownerships.get(c.pk),
            "errors": p.strategies.get(c.pk),
            "transient": labels(p.strategies[c.pk].transient) if c.pk in p.strategies else "",
            "fatal": labels(p.strategies[c.pk].fatal) if c.pk in p.strategies else "",
            "security": p.security.get(c.pk),
            "personal": p.personal_of(c.pk),
            "backfill": p.backfills.get(c.pk),
        }
        for c in ev.connections
    ]


def render_html(project: IntegrationProject, *, preview: bool = False, context=None) -> str:
    context = context or runbook_context(project)
    return render_to_string("runbook/runbook.html", {**context, "preview": preview})


def render_pdf(project: IntegrationProject, progress: Progress | None = None):
    """(pdf bytes, page count, version hash) of the project's runbook."""
    from weasyprint import HTML  # imported late: it is slow to import and only needed here

    progress = progress or (lambda pct, msg: None)
    progress(5, "Collecting the project's content")
    context = runbook_context(project)
    progress(20, "Rendering the document")
    html = render_html(project, context=context)
    with fewer_collections():
        progress(30, "Laying out the pages")
        document = HTML(string=html, url_fetcher=no_fetching()).render()
        progress(80, f"Writing {len(document.pages)} pages")
        pdf = document.write_pdf()
    return pdf, len(document.pages), context["version"]


WARM_UP_HTML = """<html><head><style>{css}</style></head><body><h1>Warm-up</h1>
<table class="mapping"><thead><tr><th>a</th></tr></thead><tbody><tr><td class="rule">
<code>trim | lower</code> ✓ ✗ — é</td></tr></tbody></table></body></html>"""


def warm_up() -> float:
    """Pay WeasyPrint's one-time costs (its import, the font configuration, the stylesheet
    machinery) now, so a worker's first export is as quick as its later ones.

    Returns the seconds it took. Called when a Celery pool process starts.
    """
    from weasyprint import HTML

    start = time.perf_counter()
    css = render_to_string("runbook/runbook.css")
    HTML(string=WARM_UP_HTML.format(css=css), url_fetcher=no_fetching()).write_pdf()
    return time.perf_counter() - start


def is_big(project: IntegrationProject) -> bool:
    rows = (
        FieldMapping.objects.filter(project=project).count()
        + TestCase.objects.filter(project=project).count()
    )
    return rows > BIG_PROJECT_ROWS


def start_export(project: IntegrationProject, user) -> RunbookExport:
    version = project_hash(step_hashes(project))
    return RunbookExport.objects.create(
        project=project, version_hash=version, created_by=user, message="Waiting for a worker"
    )


# The export's Celery task (runbook/tasks.py), published by name so that this module does not
# import its own tasks module; the name is the one queued messages already carry.
EXPORT_TASK = "planner.tasks.export_runbook"


def queue_export(project: IntegrationProject, user) -> RunbookExport:
    """Start a big project's export on a worker. If the broker is down, the export is failed
    at once with the reason rather than left waiting for a worker that will never come.

    Publishes right away, so call it outside a transaction: the worker must find the row.
    """
    from aethon.celery import app

    export = start_export(project, user)
    try:
        publish(app.tasks[EXPORT_TASK], export.pk)
    except QueueUnreachable:
        _fail(export, QUEUE_UNREACHABLE)
    return export


def _set(export: RunbookExport, **fields) -> None:
    for name, value in fields.items():
        setattr(export, name, value)
    export.save(update_fields=[*fields, "updated_at"])


def run_export(export_id: int) -> RunbookExport | None:
    """Produce the PDF of one export. Safe to call twice: a finished export is left alone.

    Every failure ends in status 'failed' with the reason; nothing is raised, so a broken
    export never loops through retries.
    """
    updated = RunbookExport.objects.filter(
        pk=export_id, status__in=[RunbookExport.Status.QUEUED, RunbookExport.Status.RUNNING]
    ).update(attempts=F("attempts") + 1, status=RunbookExport.Status.RUNNING)
    export = RunbookExport.objects.select_related("project").filter(pk=export_id).first()
    if export is None or not updated:
        return export
    if export.attempts > MAX_ATTEMPTS:
        _fail(export, "The export was interrupted twice (the worker stopped). Try again.")
        return export
    started = time.perf_counter()
    try:
        pdf, pages, version = render_pdf(
            export.project, lambda pct, msg: _set(export, progress=pct, message=msg)
        )
        _set(export, progress=95, message="Saving the file")
        name = f"runbook-{slugify(export.project.name)[:60]}-{version[:12]}.pdf"
        export.file.save(name, ContentFile(pdf), save=False)
        _set(
            export,
            file=export.file,
            version_hash=version,
            pages=pages,
            seconds=round(time.perf_counter() - started, 2),
            status=RunbookExport.Status.DONE,
            progress=100,
            message=f"{pages} pages",
            finished_at=timezone.now(),
        )
    except Exception as exc:  # any failure is the export's outcome, shown to the user
        log.exception("runbook export %s failed", export_id)
        _fail(export, f"{type(exc).__name__}: {exc}")
    return export


def _fail(export: RunbookExport, reason: str) -> None:
    _set(
        export,
        status=RunbookExport.Status.FAILED,
        error=reason[:2000],
        message="Failed",
        finished_at=timezone.now(),
    )


DIED = "The export stopped making progress: its worker probably died. Try again."
NEVER_PICKED = "No worker picked this export up. Is the Celery worker running?"


def stall_reason(export: RunbookExport, now=None) -> str:
    """Why an export that says it is active is not: its worker died, or none came."""
    now = now or timezone.now()
    if export.status == RunbookExport.Status.RUNNING and export.updated_at < now - RUNNING_TIMEOUT:
        return DIED
    if export.status == RunbookExport.Status.QUEUED and export.created_at < now - QUEUED_TIMEOUT:
        return NEVER_PICKED
    return ""


def shown_as_failed(exports) -> list[RunbookExport]:
    """For a page: stalled exports shown failed with the reason, in memory only (GET never
    writes; `expire_stalled` records it on the write path and when a worker starts)."""
    exports = list(exports)
    now = timezone.now()
    for export in exports:
        if reason := stall_reason(export, now):
            export.status, export.error, export.message = RunbookExport.Status.FAILED, reason, ""
    return exports


def expire_stalled(project: IntegrationProject) -> int:
    """Fail the exports of `project` whose worker died or never came."""
    now = timezone.now()
    qs = RunbookExport.objects.filter(project=project)
    dead = qs.filter(status=RunbookExport.Status.RUNNING, updated_at__lt=now - RUNNING_TIMEOUT)
    lost = qs.filter(status=RunbookExport.Status.QUEUED, created_at__lt=now - QUEUED_TIMEOUT)
    n = dead.update(
        status=RunbookExport.Status.FAILED, message="Failed", error=DIED, finished_at=now
    )
    n += lost.update(
        status=RunbookExport.Status.FAILED, message="Failed", error=NEVER_PICKED, finished_at=now
    )
    return n
