"""Go-live, health reviews after it, alerts on monitor thresholds, and API tokens.

`GoLive`, `HealthReview` results and `CriterionResult` are records of what happened; the
review schedule, alert channels and feedback items are edited artifacts (historical).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .plan import Monitor
from .projects import Connection, IntegrationProject
from .signoff import ImmutableModel
from .steps import SuccessCriterion


class GoLive(ImmutableModel):
    """The project was marked live: by whom, when, and the readiness it had at that moment."""

    project = models.OneToOneField(
        IntegrationProject, on_delete=models.PROTECT, related_name="go_live"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    snapshot = models.JSONField(default=dict)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "go-live"

    def __str__(self) -> str:
        return f"{self.project} live since {self.created_at:%d %b %Y}"


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
        NOT_MEASURABLE = "not_measurable", "Not measurable from runs"

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


class AlertChannel(VersionedModel):
    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook (generic JSON)"
        SLACK = "slack", "Slack-compatible webhook"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="alert_channels"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    target = models.CharField(
        "address or URL", max_length=500, help_text="An email address, or the webhook's URL."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["kind", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.target}"


class Alert(models.Model):
    """One breach of one monitor's threshold on one connection, open until it clears."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    project = models.ForeignKey(IntegrationProject, on_delete=models.CASCADE, related_name="alerts")
    monitor = models.ForeignKey(
        Monitor, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    fingerprint = models.CharField(max_length=200)
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    severity = models.CharField(max_length=8, choices=Monitor.Severity.choices)
    title = models.CharField(max_length=300)
    value = models.FloatField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=200, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=models.Q(state="open"),
                name="one_open_alert_per_fingerprint",
            )
        ]

    def __str__(self) -> str:
        return self.title


class ApiToken(models.Model):
    """A personal API token: only its sha256 is stored; the token is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
