"""Alerts on step-6 monitor thresholds, and the channels they are sent to."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .monitoring import Monitor
from .projects import Connection, IntegrationProject


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
    name = models.CharField(
        "route name",
        max_length=80,
        blank=True,
        help_text="The name monitors give as their alert route, e.g. on-call.",
    )
    severities = models.CharField(
        "severities",
        max_length=40,
        blank=True,
        help_text="Comma-separated: info, warning, critical. Empty: every severity.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["kind", "pk"]

    def __str__(self) -> str:
        named = f" ({self.name})" if self.name else ""
        return f"{self.get_kind_display()}{named}: {self.target}"

    def takes(self, severity: str) -> bool:
        wanted = {s.strip().lower() for s in self.severities.split(",") if s.strip()}
        return not wanted or severity in wanted


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
    unit = models.CharField(max_length=40, blank=True)
    source = models.CharField(max_length=200, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.JSONField(default=list, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reminded_at = models.DateTimeField(null=True, blank=True)
    reminders = models.PositiveIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)

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
