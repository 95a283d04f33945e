"""Step 7: training and feedback (page, forms, the incident table)."""

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from planner.checklist import delivery as plan
from planner.checklist import governance
from planner.models import IncidentEntry, IntegrationProject, TrainingPlan
from planner.reviews.schedule import dates_in_force
from planner.steps.views import save_single, single_form
from planner.web.forms import ProjectScopedForm, date_input, textarea
from planner.web.permissions import project_access
from planner.web.rows import STEP_HEADER, RowKind, table_context


class TrainingPlanForm(ProjectScopedForm):
    class Meta:
        model = TrainingPlan
        fields = [
            "audiences",
            "guide",
            "recording",
            "demo_session",
            "feedback_channel",
            "go_live_on",
            "review_schedule",
        ]
        widgets = {"audiences": textarea(3), "go_live_on": date_input()}


class IncidentEntryForm(ProjectScopedForm):
    class Meta:
        model = IncidentEntry
        fields = ["symptom", "to_check", "fix", "escalation"]
        help_texts = {"to_check": ""}


INCIDENTS = RowKind(
    "incident",
    "incident",
    IncidentEntry,
    IncidentEntryForm,
    ("Symptom", "Check", "Fix", "Escalation"),
    lambda i: [i.symptom, i.to_check, i.fix, i.escalation],
    lambda ev: plan.plan_of(ev).incidents,
    step=7,
    also=(STEP_HEADER,),
)


def page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    p = plan.plan_of(ev)
    ctx["training_form"] = single_form(
        forms, "training_form", TrainingPlanForm, p.training, TrainingPlan, project
    )
    ctx["incidents_table"] = table_context(request, project, INCIDENTS, ev)
    go_live = p.training.go_live_on if p.training else None
    ctx["review_dates"] = dates_in_force(project, go_live)
    start = governance.go_live_dates([project.pk]).get(project.pk)
    ctx["architecture_review"] = governance.next_architecture_review(start, timezone.localdate())


@project_access("edit")
def training_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return save_single(
        request, project, 7, TrainingPlan, TrainingPlanForm, "training_form", "training"
    )
