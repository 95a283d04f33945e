"""Steps 4 to 7: their pages, one-per-project forms, tables (RowKind) and evidence downloads."""

from django.contrib import messages
from django.db import models
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from planner.checklist import delivery as plan
from planner.models import (
    DeploymentPlan,
    IncidentEntry,
    IntegrationProject,
    Monitor,
    RollbackStep,
    RollbackTrigger,
    SuccessCriterion,
    TestCase,
    TestPlan,
    TrainingPlan,
)
from planner.models.plan import Comparator
from planner.steps.forms import (
    DeploymentPlanForm,
    IncidentEntryForm,
    MonitorForm,
    RollbackStepForm,
    RollbackTriggerForm,
    TestCaseForm,
    TestPlanForm,
    TrainingPlanForm,
)
from planner.web.common import project_context
from planner.web.concurrency import save_versioned
from planner.web.permissions import project_access
from planner.web.rows import KINDS, STEP_HEADER, RowKind, table_context

STAGES = "planner/steps/step4.html#stages"
COVERAGE = "planner/steps/step6.html#coverage"


def _step_page(number: int):
    return lambda p, obj=None: reverse("planner:step", args=[p.pk, number])


def _dec(value) -> str:
    return "" if value is None else f"{value.normalize():f}"


def _threshold(obj) -> str:
    if obj.threshold is None:
        return ""
    return f"{obj.get_comparator_display()} {_dec(obj.threshold)} {obj.unit}".strip()


def _window(obj) -> str:
    return f"{obj.window_value} {obj.get_window_unit_display()}" if obj.window_value else ""


def evidence_url(case: TestCase) -> str:
    return reverse("planner:testcase_evidence", args=[case.project_id, case.pk])


def _evidence_cell(case: TestCase) -> str:
    parts = []
    if case.evidence_file:
        name = case.evidence_file.name.rsplit("/", 1)[-1]
        parts.append(format_html('<a href="{}">{}</a>', evidence_url(case), name))
    if case.evidence_note:
        parts.append(case.evidence_note)
    if case.validation_run_id:  # linked from the run's page (issue 4)
        url = reverse("planner:run_show", args=[case.project_id, case.validation_run_id])
        parts.append(
            format_html('<a href="{}">validation run #{}</a>', url, case.validation_run_id)
        )
    return format_html_join(" · ", "{}", ((p,) for p in parts))


def _with_note(main: str, note: str, prefix: str = ""):
    """A cell's text with a smaller second line, so a row stays readable at 6 columns."""
    if not note:
        return main
    return format_html('{}<br><small class="muted">{}{}</small>', main, prefix, note)


def _case_cells(c: TestCase) -> list[str]:
    stage = c.get_stage_display()
    if c.scenario:
        stage = f"{stage}: {c.get_scenario_display().lower()}"
    return [
        stage,
        _with_note(c.description, c.data_set, "Data: "),
        _with_note(c.expected_result, c.pass_criterion, "Pass/fail: "),
        c.owner,
        c.get_status_display(),
        _evidence_cell(c),
    ]


def _case_warning(c: TestCase) -> str:
    if not c.pass_criterion.strip():
        return "No pass/fail criterion"
    if c.status == TestCase.Status.PASSED and not c.has_evidence:
        return "Passed without evidence"
    return ""


def _monitor_cells(m: Monitor) -> list[str]:
    link = format_html('<a href="{}" rel="noopener">dashboard</a>', m.dashboard_url)
    return [
        m.get_kind_display(),
        m.name,
        _threshold(m),
        _window(m),
        m.get_severity_display(),
        m.alert_route,
        link if m.dashboard_url else "",
        m.criterion.metric if m.criterion_id and m.criterion else "",
    ]


def _stage_context(ctx: dict, obj=None) -> None:
    ctx["stages"] = plan.stage_summary(ctx["evidence"])


def _coverage_context(ctx: dict, obj=None) -> None:
    ev = ctx["evidence"]
    monitors = plan.plan_of(ev).monitors
    ctx["coverage"] = [(c, [m for m in monitors if m.criterion_id == c.pk]) for c in ev.criteria]


def _criteria_by_id(monitors: list[Monitor], ev) -> None:
    by_id = {c.pk: c for c in ev.criteria}
    for m in monitors:
        # The criteria are already loaded: no query per monitor row.
        if m.criterion_id in by_id:
            m.criterion = by_id[m.criterion_id]


def _monitors(ev) -> list[Monitor]:
    monitors = plan.plan_of(ev).monitors
    _criteria_by_id(monitors, ev)
    return monitors


PLAN_KINDS = (
    RowKind(
        "testcase",
        "test case",
        TestCase,
        TestCaseForm,
        ("Stage", "Case and data set", "Expected result", "Owner", "Status", "Evidence"),
        _case_cells,
        lambda ev: plan.plan_of(ev).test_cases,
        _step_page(4),
        warning=_case_warning,
        step=4,
        also=(STEP_HEADER, STAGES),
        extend=_stage_context,
    ),
    RowKind(
        "trigger",
        "rollback trigger",
        RollbackTrigger,
        RollbackTriggerForm,
        ("Metric", "Roll back when", "Window"),
        lambda t: [t.metric, _threshold(t), _window(t)],
        lambda ev: plan.plan_of(ev).triggers,
        _step_page(5),
        warning=lambda t: "" if t.is_measurable else "Needs threshold and window",
        step=5,
        also=(STEP_HEADER,),
    ),
    RowKind(
        "rollbackstep",
        "rollback step",
        RollbackStep,
        RollbackStepForm,
        ("Order", "Action", "Owner", "Expected duration"),
        lambda s: [
            str(s.position),
            s.action,
            s.owner,
            f"{s.expected_minutes} min" if s.expected_minutes is not None else "",
        ],
        lambda ev: plan.plan_of(ev).rollback_steps,
        _step_page(5),
        warning=lambda s: (
            ""
            if s.owner.strip() and s.expected_minutes is not None
            else ("Needs owner and duration")
        ),
        step=5,
        also=(STEP_HEADER,),
    ),
    RowKind(
        "monitor",
        "monitor",
        Monitor,
        MonitorForm,
        ("Check", "What", "Alert when", "Window", "Severity", "Route", "Dashboard", "Criterion"),
        _monitor_cells,
        _monitors,
        _step_page(6),
        warning=lambda m: "" if m.is_complete else "Needs threshold, window and route",
        step=6,
        also=(STEP_HEADER, COVERAGE),
        extend=_coverage_context,
    ),
    RowKind(
        "incident",
        "incident",
        IncidentEntry,
        IncidentEntryForm,
        ("Symptom", "Check", "Fix", "Escalation"),
        lambda i: [i.symptom, i.to_check, i.fix, i.escalation],
        lambda ev: plan.plan_of(ev).incidents,
        _step_page(7),
        step=7,
        also=(STEP_HEADER,),
    ),
)
# Registered in the shared table framework: its add / show / edit / delete views serve these.
KINDS.update({k.name: k for k in PLAN_KINDS})


# ---------------------------------------------------------------------------------------------
# Step pages: what each adds to the context of planner/steps/step<n>.html


def _single(model: type[models.Model], record, project):
    return record or model(project=project)


def test_plan_page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    p = plan.plan_of(ev)
    ctx["testplan_form"] = forms.get("testplan_form") or TestPlanForm(
        instance=_single(TestPlan, p.test_plan, project), project=project
    )
    ctx["stages"] = plan.stage_summary(ev)
    ctx["needs_reverse"] = plan.needs_reverse_stage(ev)
    ctx["cases_table"] = table_context(request, project, KINDS["testcase"], ev)


def deployment_page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    p = plan.plan_of(ev)
    ctx["deployment_form"] = forms.get("deployment_form") or DeploymentPlanForm(
        instance=_single(DeploymentPlan, p.deployment, project), project=project
    )
    ctx["triggers_table"] = table_context(request, project, KINDS["trigger"], ev)
    ctx["rollback_table"] = table_context(request, project, KINDS["rollbackstep"], ev)
    ctx["rollback_minutes"] = sum(s.expected_minutes or 0 for s in p.rollback_steps)


def monitoring_page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    ctx["monitors_table"] = table_context(request, project, KINDS["monitor"], ev)
    _coverage_context(ctx)


def training_page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    p = plan.plan_of(ev)
    ctx["training_form"] = forms.get("training_form") or TrainingPlanForm(
        instance=_single(TrainingPlan, p.training, project), project=project
    )
    ctx["incidents_table"] = table_context(request, project, KINDS["incident"], ev)
    go_live = p.training.go_live_on if p.training else None
    ctx["review_dates"] = plan.review_dates(go_live) if go_live else []


PAGES = {4: test_plan_page, 5: deployment_page, 6: monitoring_page, 7: training_page}


# ---------------------------------------------------------------------------------------------
# One-per-project records: saved like step 1's objective and step 3's decision.


def _save(request, project, number, model, form_class, key, partial) -> HttpResponse:
    # Imported here: steps.py imports this module to register the pages above.
    from planner.steps.views import _save_single

    if request.method != "POST":
        return redirect("planner:step", project_id=project.pk, number=number)
    return _save_single(request, project, number, model, form_class, key, partial)


@project_access("edit")
def testplan_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return _save(request, project, 4, TestPlan, TestPlanForm, "testplan_form", "testplan")


@project_access("edit")
def deployment_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return _save(
        request, project, 5, DeploymentPlan, DeploymentPlanForm, "deployment_form", "deployment"
    )


@project_access("edit")
def training_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return _save(request, project, 7, TrainingPlan, TrainingPlanForm, "training_form", "training")


# ---------------------------------------------------------------------------------------------


@project_access("view")
def testcase_evidence(request: HttpRequest, project: IntegrationProject, pk: int):
    """The evidence file of a test case: only through this permission-checked view."""
    case = get_object_or_404(TestCase, project=project, pk=pk)
    if not case.evidence_file:
        raise Http404("This test case has no evidence file.")
    try:
        handle = case.evidence_file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The evidence file is missing from storage.") from exc
    name = case.evidence_file.name.rsplit("/", 1)[-1]
    return FileResponse(handle, as_attachment=True, filename=name)


# The alert fires when the criterion is broken: the opposite comparison.
BREACH = {
    Comparator.LTE: Comparator.GT,
    Comparator.LT: Comparator.GTE,
    Comparator.GTE: Comparator.LT,
    Comparator.GT: Comparator.LTE,
    Comparator.EQ: Comparator.EQ,
}


@project_access("edit")
@require_POST
def monitor_from_criterion(request: HttpRequest, project: IntegrationProject, pk: int):
    """One click: a monitor that alerts when a step-1 success criterion is breached."""
    c = get_object_or_404(SuccessCriterion, project=project, pk=pk)
    monitor = Monitor(
        project=project,
        kind=Monitor.Kind.CRITERION,
        name=c.metric,
        comparator=BREACH.get(c.comparator, Comparator.GT),
        threshold=c.target,
        unit=c.unit,
        window_value=c.window_value,
        window_unit=c.window_unit,
        criterion=c,
    )
    save_versioned(monitor, None)
    if not request.htmx:
        messages.success(request, f"Added a monitor for '{c.metric}': give it an alert route.")
        return redirect(reverse("planner:step", args=[project.pk, 6]) + f"#monitor-{monitor.pk}")
    kind = KINDS["monitor"]
    ctx = project_context(request, project)
    ctx["table"] = table_context(request, project, kind, ctx["evidence"])
    html = render_to_string("planner/rows.html#table", ctx, request=request)
    return kind.fragment(request, project, html)
