"""Step 7: training and feedback (page, forms, the incident table)."""

from django import forms
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from planner.checklist import aftercare, governance
from planner.checklist import delivery as plan
from planner.models import (
    ChangelogEntry,
    Connection,
    Improvement,
    IncidentEntry,
    IntegrationProject,
    SuccessCriterion,
    TrainingPlan,
)
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
            "backlog_reviewed_on",
        ]
        widgets = {
            "audiences": textarea(3),
            "go_live_on": date_input(),
            "backlog_reviewed_on": date_input(),
        }


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


class ImprovementForm(ProjectScopedForm):
    class Meta:
        model = Improvement
        fields = [
            "title",
            "connection",
            "criterion",
            "metric_key",
            "expected_effect",
            "priority",
            "status",
            "due_on",
        ]
        widgets = {"due_on": date_input()}
        help_texts = {"connection": "", "expected_effect": ""}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = Connection.objects.filter(
            project=self.project
        ).select_related("source", "target")
        self.fields["criterion"].queryset = SuccessCriterion.objects.filter(project=self.project)

    def clean(self):
        data = super().clean()
        if not data.get("criterion") and not data.get("metric_key"):
            self.add_error(
                "criterion", "Tie it to the KPI it should move: a success criterion or a figure."
            )
        return data


class ChangelogEntryForm(ProjectScopedForm):
    class Meta:
        model = ChangelogEntry
        fields = ["changed_at", "connection", "summary", "detail"]
        widgets = {
            "changed_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
            "detail": textarea(2),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = Connection.objects.filter(
            project=self.project
        ).select_related("source", "target")
        self.fields["connection"].required = False


def _sign_entry(entry: ChangelogEntry) -> None:
    """Who wrote an entry: the person whose save made its first version (the history knows)."""
    if entry.author_id is None:
        first = entry.history.order_by("history_id").first()
        if first is not None and first.history_user_id:
            ChangelogEntry.objects.filter(pk=entry.pk).update(author=first.history_user_id)
            entry.author_id = first.history_user_id


IMPROVEMENTS = RowKind(
    "improvement",
    "improvement",
    Improvement,
    ImprovementForm,
    ("Priority", "Improvement", "Connection", "KPI it should move", "Status", "Due"),
    lambda i: [
        i.get_priority_display(),
        i.title,
        str(i.connection or "whole integration"),
        "; ".join(x for x in (i.kpi_text, i.expected_effect) if x),
        i.get_status_display(),
        f"{i.due_on:%d %b %Y}" if i.due_on else "",
    ],
    aftercare.backlog_of,
    step=7,
    also=(STEP_HEADER,),
)


def _diff_link(e: ChangelogEntry) -> str:
    if not e.mapping_id:
        return ""
    url = reverse("planner:history_object", args=[e.project_id, "mapping", e.mapping_id])
    if e.mapping_history_id:
        url += f"?b={e.mapping_history_id}"
    return format_html('<a href="{}">what changed</a>', url)


CHANGELOG = RowKind(
    "changelog",
    "changelog entry",
    ChangelogEntry,
    ChangelogEntryForm,
    ("When", "Who", "What", "Connection", "Diff"),
    lambda e: [
        f"{timezone.localtime(e.changed_at):%d %b %Y %H:%M}",
        e.author.get_username() if e.author else "",
        f"{e.summary} — {e.detail}" if e.detail else e.summary,
        str(e.connection or ""),
        _diff_link(e),
    ],
    aftercare.changelog_of,
    step=7,
    after_save=_sign_entry,
    also=(STEP_HEADER,),
)


def page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    p = plan.plan_of(ev)
    ctx["training_form"] = single_form(
        forms, "training_form", TrainingPlanForm, p.training, TrainingPlan, project
    )
    ctx["incidents_table"] = table_context(request, project, INCIDENTS, ev)
    ctx["backlog_table"] = table_context(request, project, IMPROVEMENTS, ev)
    ctx["changelog_table"] = table_context(request, project, CHANGELOG, ev)
    ctx["is_live"] = aftercare.live_of(ev)
    ctx["backlog_review_days"] = aftercare.BACKLOG_REVIEW_DAYS
    go_live = p.training.go_live_on if p.training else None
    ctx["review_dates"] = dates_in_force(project, go_live)
    start = governance.go_live_dates([project.pk]).get(project.pk)
    ctx["architecture_review"] = governance.next_architecture_review(start, timezone.localdate())


@project_access("edit")
def training_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return save_single(
        request, project, 7, TrainingPlan, TrainingPlanForm, "training_form", "training"
    )
