"""Step 6: monitors, each with a threshold, a window and an alert route."""

from django.db import models
from simple_history.models import HistoricalRecords

from .base import Comparator, MetricKey, VersionedModel, WindowUnit
from .objectives import SuccessCriterion
from .projects import IntegrationProject


class Monitor(VersionedModel):
    class Kind(models.TextChoices):
        CONNECTIVITY = "connectivity", "Connectivity"
        THROUGHPUT = "throughput", "Throughput"
        ERROR_RATE = "error_rate", "Error rate"
        DATA_QUALITY = "data_quality", "Data quality"
        RECONCILIATION = "reconciliation", "Reconciliation"
        CRITERION = "criterion", "Success criterion"
        OTHER = "other", "Other"

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="monitors"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(
        "what is checked", max_length=160, help_text="e.g. error rate, records synced"
    )
    metric_key = models.CharField(
        "measured by", max_length=24, choices=MetricKey.choices, blank=True
    )
    metric_flag = models.CharField(max_length=300, blank=True, editable=False)
    comparator = models.CharField(
        "alert when", max_length=2, choices=Comparator.choices, default=">"
    )
    threshold = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    unit = models.CharField(max_length=40, blank=True)
    window_value = models.PositiveIntegerField("window", null=True, blank=True)
    window_unit = models.CharField(
        max_length=8, choices=WindowUnit.choices, default=WindowUnit.MINUTES
    )
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.WARNING)
    alert_route = models.CharField(
        "alert route", max_length=200, blank=True, help_text="e.g. PagerDuty integrations on-call"
    )
    remind_every_minutes = models.PositiveIntegerField(
        "remind every (minutes)",
        null=True,
        blank=True,
        help_text="Repeat the alert while it is open and unacknowledged.",
    )
    escalate_after_minutes = models.PositiveIntegerField(
        "escalate after (minutes)", null=True, blank=True
    )
    escalate_to = models.CharField(
        "escalation route",
        max_length=200,
        blank=True,
        help_text="The channel name an unacknowledged alert goes to next.",
    )
    dashboard_url = models.URLField("dashboard link", max_length=500, blank=True)
    criterion = models.ForeignKey(
        SuccessCriterion,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="monitors",
        verbose_name="success criterion",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["kind", "pk"]

    @property
    def is_complete(self) -> bool:
        return (
            self.threshold is not None
            and bool(self.window_value)
            and bool(self.severity)
            and bool(self.alert_route.strip())
        )

    def __str__(self) -> str:
        return self.name
