"""Step 1: the business objective, measurable success criteria and data elements."""

from django.db import models
from simple_history.models import HistoricalRecords

from .base import UPPER_BOUND_FIRST, MetricKey, VersionedModel, WindowUnit, window_words
from .projects import Connection, IntegrationProject, System


class Objective(VersionedModel):
    """Step 1: the business objective and who was consulted (one per project)."""

    project = models.OneToOneField(
        IntegrationProject, on_delete=models.CASCADE, related_name="objective"
    )
    business_objective = models.TextField(blank=True)
    stakeholders_consulted = models.TextField(
        blank=True, help_text="Who was asked, one per line (name – role)."
    )
    history = HistoricalRecords()

    def __str__(self) -> str:
        return "Business objective"


class SuccessCriterion(VersionedModel):
    """A measurable success criterion: 'latency <= 5 minutes, 99.9% over 30 days'."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="criteria"
    )
    metric = models.CharField(max_length=120, help_text="What is measured, e.g. sync latency.")
    metric_key = models.CharField(
        "measured by",
        max_length=24,
        choices=MetricKey.choices,
        blank=True,
        help_text="The figure that decides it; 'measured outside Aethon' needs dated evidence.",
    )
    # Set when a row written before the catalogue could not be placed on a figure.
    metric_flag = models.CharField(max_length=300, blank=True, editable=False)
    evidence_value = models.DecimalField(
        "measured value", max_digits=14, decimal_places=4, null=True, blank=True
    )
    evidence_date = models.DateField("measured on", null=True, blank=True)
    evidence_note = models.CharField(
        "evidence",
        max_length=300,
        blank=True,
        help_text="Where the value comes from (report, dashboard, ticket).",
    )
    comparator = models.CharField(max_length=2, choices=UPPER_BOUND_FIRST, default="<=")
    target = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    unit = models.CharField(max_length=40, blank=True, help_text="e.g. minutes, %, records")
    attainment_pct = models.DecimalField(
        "attainment %",
        max_digits=7,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Share of the window the target must hold, e.g. 99.9.",
    )
    window_value = models.PositiveIntegerField(null=True, blank=True)
    window_unit = models.CharField(
        max_length=8, choices=WindowUnit.choices, default=WindowUnit.DAYS
    )
    freshness_connection = models.ForeignKey(
        Connection,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="freshness_criteria",
        verbose_name="connection measured",
        help_text="For propagation lag: the connection whose lag is measured.",
    )
    measure_every_minutes = models.PositiveIntegerField(
        "measure every (min)",
        null=True,
        blank=True,
        help_text="Blank: chosen from the target (a 5-minute target is measured every minute).",
    )
    position = models.PositiveIntegerField(default=0)
    history = HistoricalRecords()

    class Meta:
        ordering = ["position", "pk"]
        verbose_name_plural = "success criteria"

    @property
    def is_measurable(self) -> bool:
        return (
            bool(self.metric.strip())
            and bool(self.metric_key)
            and self.target is not None
            and bool(self.window_value)
        )

    @property
    def has_manual_evidence(self) -> bool:
        return self.evidence_value is not None and self.evidence_date is not None

    def __str__(self) -> str:
        target = "?" if self.target is None else f"{self.target.normalize():f}"
        text = f"{self.metric} {self.comparator} {target} {self.unit}".rstrip()
        if self.window_value:
            share = f"{self.attainment_pct.normalize():f}% " if self.attainment_pct else ""
            text += f", {share}over {window_words(self.window_value, self.window_unit)}"
        return text


class DataElement(VersionedModel):
    """A business data element (customer status, invoice total) and its source of truth."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="data_elements"
    )
    name = models.CharField(max_length=120)
    source_of_truth = models.ForeignKey(
        System, on_delete=models.SET_NULL, null=True, blank=True, related_name="owned_elements"
    )
    notes = models.CharField(max_length=300, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="unique_data_element")
        ]

    def __str__(self) -> str:
        return self.name
