"""Step 5: deployment and rollback (page, forms, the trigger and rollback-step tables)."""

from django import forms
from django.db.models import Max
from django.http import HttpRequest, HttpResponse

from planner.checklist import delivery as plan
from planner.models import DeploymentPlan, IntegrationProject, RollbackStep, RollbackTrigger
from planner.steps import practices
from planner.steps.views import save_single, single_form
from planner.web.forms import ProjectScopedForm, date_input, textarea
from planner.web.permissions import project_access
from planner.web.rows import STEP_HEADER, RowKind, table_context, threshold_text, window_text


class DeploymentPlanForm(ProjectScopedForm):
    class Meta:
        model = DeploymentPlan
        fields = [
            "pipeline",
            "env_dev",
            "env_staging",
            "env_prod",
            "rollout",
            "rollout_plan",
            "restore",
            "restore_notes",
            "rehearsed_on",
            "rehearsal_result",
            "rehearsal_notes",
        ]
        widgets = {
            "pipeline": textarea(4),
            "rollout_plan": textarea(2),
            "restore_notes": textarea(2),
            "rehearsal_notes": textarea(2),
            "rehearsed_on": date_input(),
        }

    def clean(self):
        data = super().clean()
        if data.get("rehearsal_result") and not data.get("rehearsed_on"):
            self.add_error("rehearsed_on", "Give the date of the rehearsal with its result.")
        if data.get("rehearsed_on") and not data.get("rehearsal_result"):
            self.add_error("rehearsal_result", "Say how the rehearsal went.")
        return data


class RollbackTriggerForm(ProjectScopedForm):
    class Meta:
        model = RollbackTrigger
        fields = ["metric", "comparator", "threshold", "unit", "window_value", "window_unit"]
        widgets = {"threshold": forms.NumberInput(attrs={"step": "any"})}


class RollbackStepForm(ProjectScopedForm):
    class Meta:
        model = RollbackStep
        fields = ["position", "action", "owner", "expected_minutes"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.pk is None:
            # A new step goes last unless the editor says otherwise.
            top = RollbackStep.objects.filter(project=self.project).aggregate(Max("position"))
            self.initial["position"] = (top["position__max"] or 0) + 1


TRIGGERS = RowKind(
    "trigger",
    "rollback trigger",
    RollbackTrigger,
    RollbackTriggerForm,
    ("Metric", "Roll back when", "Window"),
    lambda t: [t.metric, threshold_text(t), window_text(t)],
    lambda ev: plan.plan_of(ev).triggers,
    warning=lambda t: "" if t.is_measurable else "Needs threshold and window",
    step=5,
    also=(STEP_HEADER,),
)


ROLLBACK_STEPS = RowKind(
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
    warning=lambda s: (
        "" if s.owner.strip() and s.expected_minutes is not None else ("Needs owner and duration")
    ),
    step=5,
    also=(STEP_HEADER,),
)


def page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    p = plan.plan_of(ev)
    ctx["deployment_form"] = single_form(
        forms, "deployment_form", DeploymentPlanForm, p.deployment, DeploymentPlan, project
    )
    ctx["triggers_table"] = table_context(request, project, TRIGGERS, ev)
    ctx["rollback_table"] = table_context(request, project, ROLLBACK_STEPS, ev)
    practices.step5_tables(request, project, ctx)
    ctx["rollback_minutes"] = sum(s.expected_minutes or 0 for s in p.rollback_steps)


@project_access("edit")
def deployment_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return save_single(
        request, project, 5, DeploymentPlan, DeploymentPlanForm, "deployment_form", "deployment"
    )
