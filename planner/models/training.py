"""Step 7: the training plan and the incident runbook."""

from django.db import models
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .projects import IntegrationProject

DEFAULT_REVIEW_SCHEDULE = "Monthly for the first 3 months after go-live, then quarterly."


class TrainingPlan(VersionedModel):
    project = models.OneToOneField(
        IntegrationProject, on_delete=models.CASCADE, related_name="training_plan"
    )
    audiences = models.TextField(
        blank=True, help_text="Who needs training, one per line (team – what they need)."
    )
    guide = models.CharField(
        "user guide", max_length=500, blank=True, help_text="Link to, or location of, the guide."
    )
    recording = models.CharField("recording", max_length=500, blank=True)
    demo_session = models.CharField(
        "demo session", max_length=300, blank=True, help_text="When and where."
    )
    feedback_channel = models.CharField(
        "feedback channel", max_length=300, blank=True, help_text="e.g. #crm-billing-sync"
    )
    go_live_on = models.DateField("go-live date", null=True, blank=True)
    review_schedule = models.CharField(
        "review schedule", max_length=300, default=DEFAULT_REVIEW_SCHEDULE
    )
    backlog_reviewed_on = models.DateField(
        "backlog last reviewed",
        null=True,
        blank=True,
        help_text="Once live, the team goes through the improvement backlog at least monthly.",
    )
    history = HistoricalRecords()

    def __str__(self) -> str:
        return "Training plan"


class IncidentEntry(VersionedModel):
    """One common incident in the runbook: what you see, what to check, the fix, who to call."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="incidents"
    )
    symptom = models.CharField(max_length=300)
    # Not `check`: that name is Model.check(), Django's system-check hook.
    to_check = models.CharField("check", max_length=300, help_text="What to look at first.")
    fix = models.CharField(max_length=300)
    escalation = models.CharField(max_length=200)
    history = HistoricalRecords()

    class Meta:
        ordering = ["pk"]
        verbose_name_plural = "incident entries"

    def __str__(self) -> str:
        return self.symptom
