"""The step page of the checklist, and saving a step's one-per-project record.

What a step's page shows comes from its page builder, named in the checklist registry.
"""

from collections.abc import Callable
from functools import cache

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.module_loading import import_string

from planner.checklist.registry import STEPS_BY_NUMBER, Step
from planner.models import IntegrationProject
from planner.teamwork.assignments import step_panel
from planner.teamwork.comments import open_comment_count
from planner.web.common import htmx_fragment, project_context
from planner.web.concurrency import StaleEdit, keep_input_after_conflict, save_versioned
from planner.web.permissions import project_access
from planner.web.rows import STEP_HEADER

PageBuilder = Callable[[HttpRequest, IntegrationProject, dict, dict], None]


@cache
def page_builder(step: Step) -> PageBuilder:
    return import_string(step.page)


def step_context(request, project, number: int, **forms) -> dict:
    """The step page's context: its body is templates/planner/steps/step<n>.html."""
    ctx = project_context(request, project)
    step = STEPS_BY_NUMBER[number]
    ctx["step"] = step
    ctx["step_readiness"] = ctx["readiness"].for_step(number)
    ctx["step_template"] = f"planner/steps/step{number}.html"
    page_builder(step)(request, project, ctx, forms)
    ctx.update(forms)
    ctx["work"] = step_panel(project, number)
    ctx["open_comments"] = open_comment_count(project, number)
    return ctx


@project_access("view")
def step(request: HttpRequest, project: IntegrationProject, number: int) -> HttpResponse:
    if number not in STEPS_BY_NUMBER:
        raise Http404("The checklist has seven steps.")
    return render(request, "planner/step.html", step_context(request, project, number))


def single_form(forms: dict, key: str, form_class, record, model, project):
    """The form of a step's one-per-project record: the one being re-shown (after an error or
    a conflict), else one on the stored record, else on a new one to fill in."""
    return forms.get(key) or form_class(instance=record or model(project=project), project=project)


def save_single(request, project, number, model, form_class, form_key, partial):
    """Save the one-per-project record of a step (objective, decision, test plan...)."""
    if request.method != "POST":
        return redirect("planner:step", project_id=project.pk, number=number)
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
    ctx = step_context(request, project, number, **{form_key: fresh})
    ctx["saved"] = saved
    ctx["stale"] = stale
    if request.htmx:
        html = render_to_string(f"planner/steps/step{number}.html#{partial}", ctx, request)
        return htmx_fragment(request, project, html, step=number, also=(STEP_HEADER,))
    return render(request, "planner/step.html", ctx)
