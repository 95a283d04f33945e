"""Validation runs: the hub (systems, connections, schedules, runs with trends), a run's page
with live progress, cancel, the differences download and linking a run to a test case."""

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from planner.models import (
    Connection,
    FieldMapping,
    IntegrationProject,
    RunKind,
    RunSchedule,
    System,
    TestCase,
    ValidationRun,
)
from planner.runs import partition_progress as partitions
from planner.runs.display import stage_views
from planner.runs.endpoints import endpoint_of
from planner.runs.schedules import sync_schedule
from planner.runs.service import RunRefused, cancel_run, settings_missing, start_validation_run
from planner.web.common import project_context
from planner.web.concurrency import StaleEdit, save_versioned
from planner.web.forms import VersionedForm
from planner.web.permissions import can, project_access

LIST = "planner/runs.html"
DETAIL = "planner/runs_detail.html"
TREND_RUNS = 20


def run_url(run: ValidationRun) -> str:
    return reverse("planner:run_show", args=[run.project_id, run.pk])


def runs_url(project_id: int, anchor: str = "") -> str:
    return reverse("planner:runs", args=[project_id]) + (f"#{anchor}" if anchor else "")


class RunScheduleForm(VersionedForm):
    class Meta:
        model = RunSchedule
        fields = ["every", "baseline"]

    def __init__(self, *args, connection: Connection, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.connection = connection
        others = System.objects.filter(project_id=connection.project_id).exclude(
            pk=connection.target_id
        )
        self.fields["baseline"].queryset = others
        self.fields["baseline"].empty_label = "— none —"


# ---------------------------------------------------------------------------------------------
# The hub


def trend(runs: list[ValidationRun]) -> dict:
    """Points of an inline SVG: agreement % per finished run, oldest first.

    The scale starts just below the lowest value, so that 99.2 % vs 99.9 % is visible.
    """
    done = [r for r in runs if not r.is_active][:TREND_RUNS][::-1]
    width, height = 200, 40
    step = width / max(len(done) - 1, 1)
    pcts = [p for r in done if (p := r.summary.get("agreement_pct")) is not None]
    low = max(0, min(pcts, default=0) // 1 - 1)
    points = []
    for i, r in enumerate(done):
        pct = r.summary.get("agreement_pct")
        y = height if pct is None else height - (pct - low) / (100 - low) * height
        points.append({"x": round(i * step, 1), "y": round(y, 1), "run": r, "pct": pct})
    line = " ".join(f"{p['x']},{p['y']}" for p in points if p["pct"] is not None)
    return {
        "points": points,
        "line": line,
        "width": width,
        "height": height,
        "low": low,
        "last": pcts[-1] if pcts else None,
    }


def _hub_context(request, project) -> dict:
    ctx = project_context(request, project)
    ev = ctx["evidence"]
    systems = System.objects.filter(project=project).select_related("endpoint")
    runs = list(
        ValidationRun.objects.filter(project=project)
        .select_related("connection__source", "connection__target", "triggered_by")
        .order_by("-created_at", "-pk")[:200]
    )
    schedules = {s.connection_id: s for s in RunSchedule.objects.filter(project=project)}
    rows = {}
    for c in FieldMapping.objects.filter(project=project).values_list("connection_id", flat=True):
        rows[c] = rows.get(c, 0) + 1
    configured = {s.pk for s in systems if endpoint_of(s) is not None}
    connections = []
    for c in ev.connections:
        mine = [r for r in runs if r.connection_id == c.pk]
        schedule = schedules.get(c.pk) or RunSchedule(connection=c, project=project)
        connections.append(
            {
                "connection": c,
                "mapping_rows": rows.get(c.pk, 0),
                "latest": mine[0] if mine else None,
                "trend": trend(mine),
                "schedule": schedule,
                "not_runnable": settings_missing(c, configured),
                "schedule_form": RunScheduleForm(
                    instance=schedule, connection=c, prefix=f"schedule-{c.pk}"
                ),
            }
        )
    ctx.update(systems=systems, connections=connections, runs=runs[:50])
    return ctx


@project_access("view")
@require_GET
def runs(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return render(request, LIST, _hub_context(request, project))


def _connection(project, connection_id: int) -> Connection:
    return get_object_or_404(
        Connection.objects.select_related("source", "target"), project=project, pk=connection_id
    )


@project_access("edit")
@require_POST
def run_start(request: HttpRequest, project: IntegrationProject, connection_id: int):
    connection = _connection(project, connection_id)
    kind = request.POST.get("kind", RunKind.VALIDATION)
    if kind not in RunKind.values:
        messages.error(request, f"Kind of run: choose one of {', '.join(RunKind.labels)}.")
        return redirect(runs_url(project.pk, f"connection-{connection.pk}"))
    limit = request.POST.get("max_differences", "").strip()
    if limit and not limit.isdigit():
        messages.error(request, "Stop after N differences: give a whole number, or leave it blank.")
        return redirect(runs_url(project.pk, f"connection-{connection.pk}"))
    sample = request.POST.get("sample_percent", "").strip()
    if sample and not sample.isdigit():
        messages.error(
            request, "Sample: give a percentage of keys from 1 to 99, or leave it blank."
        )
        return redirect(runs_url(project.pk, f"connection-{connection.pk}"))
    try:
        run = start_validation_run(
            connection,
            request.user,
            kind=kind,
            max_differences=int(limit) if limit else None,
            sample_percent=int(sample) if sample else None,
        )
    except RunRefused as exc:
        messages.error(request, str(exc))
        return redirect(runs_url(project.pk, f"connection-{connection.pk}"))
    if run.status == ValidationRun.Status.FAILED:
        messages.error(request, run.error)
    return redirect(run_url(run))


@project_access("edit")
@require_POST
def run_schedule(request: HttpRequest, project: IntegrationProject, connection_id: int):
    connection = _connection(project, connection_id)
    instance = RunSchedule.objects.filter(connection=connection).first() or RunSchedule(
        connection=connection, project=project
    )
    form = RunScheduleForm(
        request.POST, instance=instance, connection=connection, prefix=f"schedule-{connection.pk}"
    )
    if form.is_valid():
        schedule = form.save(commit=False)
        try:
            save_versioned(schedule, form.cleaned_data["expected_version"] if schedule.pk else None)
        except StaleEdit:
            messages.error(request, "Someone else changed this schedule meanwhile; try again.")
        else:
            sync_schedule(schedule)
            messages.success(
                request,
                f"Saved: scheduled validation of {connection} "
                f"{schedule.get_every_display().lower()}.",
            )
    else:
        errors = "; ".join(f"{form[f].label}: {' '.join(e)}" for f, e in form.errors.items())
        messages.error(request, f"Not saved. {errors}")
    return redirect(runs_url(project.pk, f"connection-{connection.pk}"))


# ---------------------------------------------------------------------------------------------
# One run


def _run(project, pk: int) -> ValidationRun:
    return get_object_or_404(
        ValidationRun.objects.select_related(
            "connection__source", "connection__target", "triggered_by", "baseline"
        ),
        project=project,
        pk=pk,
    )


def _run_context(request, project, run: ValidationRun) -> dict:
    return {
        "project": project,
        "run": run,
        "stages": stage_views(run),
        "partitions": partitions.progress_of(run),
        "can_edit": can(request.membership.role, "edit"),
    }


@project_access("view")
@require_GET
def run_show(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    run = _run(project, pk)
    ctx = project_context(request, project)
    ctx.update(_run_context(request, project, run))
    ctx["linked_cases"] = list(run.test_cases.all())
    ctx["cases"] = list(TestCase.objects.filter(project=project))
    return render(request, DETAIL, ctx)


@project_access("view")
@require_GET
def run_progress(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    """The live part of the run page; without hx-trigger once the run is over (polling stops)."""
    run = _run(project, pk)
    return render(request, f"{DETAIL}#live", _run_context(request, project, run))


@project_access("edit")
@require_POST
def run_cancel(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    run = cancel_run(_run(project, pk))
    if request.htmx:
        return render(request, f"{DETAIL}#live", _run_context(request, project, run))
    if run.status == ValidationRun.Status.CANCELLED:
        messages.success(request, "Cancelled.")
    elif run.is_active:
        messages.success(request, "Cancelling: the worker stops at its next checkpoint.")
    else:
        messages.error(request, f"The run had already ended ({run.get_status_display()}).")
    return redirect(run_url(run))


@project_access("view")
@require_GET
def run_differences(request: HttpRequest, project: IntegrationProject, pk: int):
    """The full list of differences as CSV, only through this permission-checked view."""
    run = _run(project, pk)
    if not run.differences_file:
        messages.error(request, "This run has no list of differences to download.")
        return redirect(run_url(run))
    try:
        handle = run.differences_file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The differences file is missing from storage.") from exc
    name = f"run-{run.pk}-differences.csv"
    return FileResponse(handle, as_attachment=True, filename=name, content_type="text/csv")


@project_access("edit")
@require_POST
def run_link(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    """Link (or unlink) this run as the evidence of a step-4 test case."""
    run = _run(project, pk)
    unlink = request.POST.get("unlink")
    case_id = unlink or request.POST.get("test_case", "")
    if not case_id.isdigit():
        messages.error(request, "Test case: choose the test case this run is evidence for.")
        return redirect(run_url(run))
    case = get_object_or_404(TestCase, project=project, pk=int(case_id))
    if unlink and case.validation_run_id != run.pk:
        return redirect(run_url(run))
    if (
        not unlink
        and case.status == TestCase.Status.PASSED
        and run.status != ValidationRun.Status.PASSED
        and not case.accepted_findings.strip()
    ):
        # A failed run is no evidence for a passed case, unless the case accepts its findings.
        messages.error(
            request,
            f"Test case '{case}' is marked passed, and this run "
            f"{run.get_status_display().lower()}: it cannot be its evidence. Link a passed run, "
            "or state the accepted findings in step 4 first.",
        )
        return redirect(run_url(run))
    case.validation_run = None if unlink else run
    save_versioned(case, case.version)
    if unlink:
        messages.success(request, f"Unlinked from test case '{case}'.")
    else:
        messages.success(request, f"Linked as the evidence of test case '{case}' (step 4).")
    return redirect(run_url(run))
