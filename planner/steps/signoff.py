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
from planner.checklist.signoff import (
    Policy,
    SignOffRefused,
    mark_step_stale,
    policies,
    role_label,
    sign,
)
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
    """For each step: the roles whose approval it needs, how many people, and independence."""

    def __init__(self, *args, steps, current: dict[int, Policy], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [(r.value, r.label) for r in SIGN_OFF_ROLES]
        self.steps = list(steps)
        for step in self.steps:
            policy = current[step.number]
            label = f"{step.number}. {step.title}"
            self.fields[f"step_{step.number}"] = forms.MultipleChoiceField(
                label=label,
                choices=choices,
                required=False,
                initial=policy.roles,
                widget=forms.CheckboxSelectMultiple,
            )
            self.fields[f"needed_{step.number}"] = forms.IntegerField(
                label=f"{label}: approvers needed",
                min_value=1,
                max_value=10,
                initial=policy.approvers_needed,
            )
            self.fields[f"independent_{step.number}"] = forms.BooleanField(
                label=f"{label}: independent approver",
                required=False,
                initial=policy.independent,
            )

    def rows(self):
        for step in self.steps:
            n = step.number
            yield self[f"step_{n}"], self[f"needed_{n}"], self[f"independent_{n}"]

    def policies(self) -> dict[int, Policy]:
        data = self.cleaned_data
        return {
            s.number: Policy(
                sorted(data[f"step_{s.number}"]),
                data[f"needed_{s.number}"],
                data[f"independent_{s.number}"],
            )
            for s in self.steps
        }


def _describe(policy: Policy) -> str:
    roles = ", ".join(role_label(r) for r in policy.roles) or "nobody"
    independent = "an independent approver" if policy.independent else "self-approval allowed"
    return f"{roles}; {policy.approvers_needed} approver(s); {independent}"


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
    current = policies(project)
    form = ApproverPolicyForm(request.POST or None, steps=STEPS, current=current)
    if request.method == "POST" and form.is_valid():
        changed = []
        with transaction.atomic():
            existing = {r.step: r for r in ApproverRequirement.objects.filter(project=project)}
            for number, policy in form.policies().items():
                if policy == current[number] and number in existing:
                    continue
                requirement = existing.get(number) or ApproverRequirement(
                    project=project, step=number
                )
                requirement.roles = policy.roles
                requirement.approvers_needed = policy.approvers_needed
                requirement.independent = policy.independent
                save_versioned(requirement, requirement.version if requirement.pk else None)
                if policy != current[number]:
                    changed.append(number)
                    # Who must sign is part of what was approved: the approvals given under the
                    # old rule no longer count, and their signers are asked again.
                    mark_step_stale(
                        project,
                        number,
                        f"Who must sign changed from {_describe(current[number])} "
                        f"to {_describe(policy)}.",
                    )
        note = (
            f"Sign-off requirements changed for step(s) {', '.join(map(str, changed))}; their "
            "sign-offs are stale and the approvers were asked again."
            if changed
            else "Sign-off requirements saved."
        )
        messages.success(request, note)
        return redirect("planner:signoff_policy", project_id=project.pk)
    ctx = project_context(request, project)
    ctx.update(form=form)
    return render(request, "planner/signoff_policy.html", ctx)
