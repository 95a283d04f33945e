"""Signing a step off, and choosing which roles must sign each step.

There is deliberately no view that edits or deletes a sign-off: they are an audit trail.
"""

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string

from planner.checklist.registry import STEPS, STEPS_BY_NUMBER
from planner.checklist.signoff import SignOffRefused, required_roles, sign
from planner.models import ApproverRequirement, IntegrationProject, SignOff
from planner.models.signoff import SIGN_OFF_ROLES
from planner.steps.views import step_context
from planner.web.common import htmx_fragment, project_context
from planner.web.concurrency import save_versioned
from planner.web.forms import textarea
from planner.web.permissions import project_access
from planner.web.rows import STEP_HEADER


class SignOffForm(forms.Form):
    decision = forms.ChoiceField(choices=SignOff.Decision.choices, widget=forms.RadioSelect)
    comment = forms.CharField(required=False, widget=textarea(2))
    content_hash = forms.CharField(widget=forms.HiddenInput, max_length=64)


class ApproverPolicyForm(forms.Form):
    """For each step, the roles whose approval it needs."""

    def __init__(self, *args, steps, current: dict[int, list[str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [(r.value, r.label) for r in SIGN_OFF_ROLES]
        for step in steps:
            self.fields[f"step_{step.number}"] = forms.MultipleChoiceField(
                label=f"{step.number}. {step.title}",
                choices=choices,
                required=False,
                initial=current.get(step.number, []),
                widget=forms.CheckboxSelectMultiple,
            )

    def roles(self) -> dict[int, list[str]]:
        return {
            int(name.removeprefix("step_")): sorted(value)
            for name, value in self.cleaned_data.items()
        }


def _step_url(project: IntegrationProject, number: int) -> str:
    return STEPS_BY_NUMBER[number].url(project.pk, "signoff")


@project_access("view", write="sign_off")
def signoff(request: HttpRequest, project: IntegrationProject, number: int) -> HttpResponse:
    if number not in STEPS_BY_NUMBER:
        raise Http404("The checklist has seven steps.")
    if request.method != "POST":
        return redirect(_step_url(project, number))
    form = SignOffForm(request.POST)
    error = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            made = sign(
                project,
                number,
                request.membership,
                data["decision"],
                data["comment"],
                data["content_hash"],
            )
        except SignOffRefused as refused:
            error = str(refused)
    else:
        error = "; ".join(
            f"{form.fields[name].label or name.replace('_', ' ').capitalize()}: {e}"
            for name, errors in form.errors.items()
            for e in errors
        )
    if error is None:
        note = f"Step {number} {made.get_decision_display().lower()} (version {made.short_hash})."
        if not request.htmx:
            messages.success(request, note)
            return redirect(_step_url(project, number))
        form, saved = None, note
    else:
        if not request.htmx:
            # Re-render the step with the sign-off form as typed and the reason it was refused.
            ctx = step_context(request, project, number)
            ctx.update(signoff_form=form, signoff_error=error)
            return render(request, "planner/step.html", ctx, status=400)
        saved = None
    ctx = project_context(request, project)
    ctx.update(
        step=STEPS_BY_NUMBER[number],
        step_readiness=ctx["readiness"].for_step(number),
        signoff_form=form,
        signoff_error=error,
        signoff_saved=saved,
    )
    html = render_to_string(STEP_HEADER, ctx, request=request)
    return htmx_fragment(request, project, html, step=number)


@project_access("view", write="manage")
def signoff_policy(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    current = required_roles(project)
    form = ApproverPolicyForm(request.POST or None, steps=STEPS, current=current)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            existing = {r.step: r for r in ApproverRequirement.objects.filter(project=project)}
            for number, roles in form.roles().items():
                if roles == current[number] and number in existing:
                    continue
                requirement = existing.get(number) or ApproverRequirement(
                    project=project, step=number
                )
                requirement.roles = roles
                save_versioned(requirement, requirement.version if requirement.pk else None)
        messages.success(request, "Sign-off requirements saved.")
        return redirect("planner:signoff_policy", project_id=project.pk)
    ctx = project_context(request, project)
    ctx.update(form=form)
    return render(request, "planner/signoff_policy.html", ctx)
