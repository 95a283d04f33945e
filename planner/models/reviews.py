"""Health reviews after go-live: their schedule, results per criterion, incidents and feedback.

`HealthReview` results and `CriterionResult` are records of what happened; the review
schedule and feedback items are edited artifacts (historical).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .objectives import SuccessCriterion
from .projects import IntegrationProject


class ReviewSchedule(VersionedModel):
    """When health reviews are due after go-live (step 7's cadence, editable).

    `next_due` is the database-backed schedule the dispatcher and the beat entry read.
    """

    project = models.OneToOneField(
        IntegrationProject, on_delete=models.CASCADE, related_name="review_schedule"
    )
    first_every_months = models.PositiveSmallIntegerField(
        "first, every (months)", default=1, help_text="1 = monthly."
    )
    first_count = models.PositiveSmallIntegerField(
        "for the first … reviews", default=3, help_text="3 = the first three months."
    )
    then_every_months = models.PositiveSmallIntegerField(
        "then every (months)", default=3, help_text="3 = quarterly."
    )
    paused = models.BooleanField(default=False)
    next_due = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"Review schedule of {self.project}"


class HealthReview(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        HEALTHY = "healthy", "Healthy"
        ISSUES = "issues", "Issues found"
        INCOMPLETE = "incomplete", "Incomplete (part failed)"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Started by hand"
        SCHEDULE = "schedule", "Scheduled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="health_reviews"
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    due_at = models.DateTimeField(null=True, blank=True, help_text="The scheduled occurrence.")
    missed_occurrences = models.PositiveSmallIntegerField(
        default=0, help_text="Earlier due dates missed while workers were down, covered by this."
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    since = models.DateTimeField(null=True, blank=True, help_text="The previous review's time.")
    # [{"part", "connection", "status", "detail", "run_id"}] stored as each part finishes.
    parts = models.JSONField(default=list, blank=True)
    kpis = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # Each claim of the review bumps `attempt`; a worker writes only while its attempt is current
    # and the review still running, so a reaped review stays reaped.
    attempt = models.PositiveIntegerField(default=0)
    run_ids = models.JSONField(default=list, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_active_review_per_project",
            )
        ]

    def __str__(self) -> str:
        return f"Health review #{self.pk} of {self.project}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def failed_parts(self) -> list[dict]:
        return [p for p in self.parts if p.get("status") == "error"]


class CriterionResult(models.Model):
    class Outcome(models.TextChoices):
        MET = "met", "Met"
        MISSED = "missed", "Missed"
        NOT_MEASURABLE = "not_measurable", "No evidence"

    review = models.ForeignKey(HealthReview, on_delete=models.CASCADE, related_name="criteria")
    criterion = models.ForeignKey(
        SuccessCriterion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    criterion_text = models.CharField(max_length=300)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    measured = models.FloatField(null=True, blank=True)
    unit = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.criterion_text}: {self.get_outcome_display()}"


class FeedbackItem(VersionedModel):
    """An incident or a piece of user feedback after go-live; reviews list those since the last."""

    class Kind(models.TextChoices):
        INCIDENT = "incident", "Incident"
        FEEDBACK = "feedback", "Feedback"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="feedback_items"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.INCIDENT)
    summary = models.CharField(max_length=300)
    occurred_at = models.DateTimeField(default=timezone.now)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-occurred_at", "-pk"]

    def __str__(self) -> str:
        return self.summary
