"""The step pages of the checklist and the single-record forms on them."""

from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string

from planner.checklist.patterns import TRADE_OFFS, analyse
from planner.checklist.registry import STEPS_BY_NUMBER
from planner.models import IntegrationProject, Objective, PatternDecision
from planner.steps.delivery import PAGES as PLAN_PAGES
from planner.steps.mapping.views import step2_page
from planner.web.common import htmx_fragment, project_context
from planner.web.concurrency import StaleEdit, keep_input_after_conflict, save_versioned
from planner.web.forms import ObjectiveForm, PatternDecisionForm
from planner.web.permissions import project_access
from planner.web.rows import KINDS, table_context


def _objectives(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    ctx["objective_form"] = forms.get("objective_form") or ObjectiveForm(
        instance=ev.objective or Objective(project=project), project=project
    )
    ctx["criteria_table"] = table_context(request, project, KINDS["criterion"], ev)
    ctx["elements_table"] = table_context(request, project, KINDS["element"], ev)


def _pattern(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    ctx["analysis"] = analyse(ev.systems, ev.connections)
    ctx["trade_offs"] = TRADE_OFFS
    ctx["decision_form"] = forms.get("decision_form") or PatternDecisionForm(
        instance=ev.decision or PatternDecision(project=project), project=project
    )


# Each built step: number -> what its page adds to the context. Its body is rendered from
# templates/planner/steps/step<n>.html; a step without an entry shows "not yet available".
STEP_PAGES: dict[int, Callable[[HttpRequest, IntegrationProject, dict, dict], None]] = {
    1: _objectives,
    2: step2_page,
    3: _pattern,
    **PLAN_PAGES,  # 4 to 7: test plan, deployment and rollback, monitoring, training
}


def _step_context(request, project, number: int, **forms) -> dict:
    ctx = project_context(request, project)
    ctx["step"] = STEPS_BY_NUMBER[number]
    ctx["step_readiness"] = ctx["readiness"].for_step(number)
    builder = STEP_PAGES.get(number)
    if builder is None:
        ctx["step_template"] = "planner/steps/unavailable.html"
    else:
        ctx["step_template"] = f"planner/steps/step{number}.html"
        builder(request, project, ctx, forms)
    ctx.update(forms)
    return ctx


@project_access("view")
def step(request: HttpRequest, project: IntegrationProject, number: int) -> HttpResponse:
    if number not in STEPS_BY_NUMBER:
        raise Http404("The checklist has seven steps.")
    return render(request, "planner/step.html", _step_context(request, project, number))


def _save_single(request, project, number, model, form_class, form_key, partial):
    """Save the one-per-project record of a step (objective, pattern decision)."""
    instance = model.objects.filter(project=project).first() or model(project=project)
    form = form_class(request.POST, instance=instance, project=project)
    saved = False
    stale = None
    if form.is_valid():
        try:
            save_versioned(form.save(commit=False), form.cleaned_data["expected_version"])
            saved = True
        except StaleEdit as conflict:
            stale = keep_input_after_conflict(
                form,
                conflict,
                "Someone else saved this while you were editing. Your input is kept below; "
                "review their values and save again to keep yours.",
            )
    if saved and not request.htmx:
        messages.success(request, "Saved.")
        return redirect("planner:step", project_id=project.pk, number=number)
    fresh = form_class(instance=form.instance, project=project) if saved else form
    ctx = _step_context(request, project, number, **{form_key: fresh})
    ctx["saved"] = saved
    ctx["stale"] = stale
    if request.htmx:
        html = render_to_string(f"planner/steps/step{number}.html#{partial}", ctx, request)
        return htmx_fragment(
            request, project, html, step=number, also=("planner/step.html#step-header",)
        )
    return render(request, "planner/step.html", ctx)


@project_access("edit")
def objective_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    if request.method != "POST":
        return redirect("planner:step", project_id=project.pk, number=1)
    return _save_single(
        request, project, 1, Objective, ObjectiveForm, "objective_form", "objective"
    )


@project_access("edit")
def decision_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    if request.method != "POST":
        return redirect("planner:step", project_id=project.pk, number=3)
    return _save_single(
        request, project, 3, PatternDecision, PatternDecisionForm, "decision_form", "decision"
    )
