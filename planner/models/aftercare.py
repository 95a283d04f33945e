"""After go-live: the improvements the team means to make, each aimed at a KPI, and the
changelog of what changed in the integration once it was live."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from .base import MetricKey, VersionedModel
from .objectives import SuccessCriterion
from .projects import Connection, IntegrationProject


class Improvement(VersionedModel):
    """One item of the integration's backlog, tied to the KPI it should move."""

    class Priority(models.IntegerChoices):
        HIGH = 1, "High"
        MEDIUM = 2, "Medium"
        LOW = 3, "Low"

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        PLANNED = "planned", "Planned"
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"
        DROPPED = "dropped", "Dropped"

    OPEN = (Status.PROPOSED, Status.PLANNED, Status.IN_PROGRESS)

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="improvements"
    )
    connection = models.ForeignKey(
        Connection,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="improvements",
        help_text="Leave empty when it concerns the whole integration.",
    )
    title = models.CharField("improvement", max_length=200)
    criterion = models.ForeignKey(
        SuccessCriterion,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="improvements",
        verbose_name="success criterion it should move",
    )
    metric_key = models.CharField(
        "…or figure it should move", max_length=24, choices=MetricKey.choices, blank=True
    )
    expected_effect = models.CharField(
        "expected effect", max_length=200, blank=True, help_text="e.g. error rate below 0.5 %."
    )
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PROPOSED)
    due_on = models.DateField("due", null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["priority", "pk"]

    @property
    def kpi_text(self) -> str:
        if self.criterion_id:
            return str(self.criterion)
        return self.get_metric_key_display() if self.metric_key else ""

    def __str__(self) -> str:
        return self.title


class ChangelogEntry(VersionedModel):
    """Something that changed in the integration after go-live: written by a person, or
    recorded when a mapping row was edited while the project was live."""

    class Origin(models.TextChoices):
        PERSON = "person", "Written by a person"
        MAPPING = "mapping", "Mapping edit"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="changelog"
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField("when", default=timezone.now)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="who",
    )
    summary = models.CharField("what changed", max_length=300)
    detail = models.TextField("detail", blank=True)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.PERSON)
    # The mapping row and the version of it this entry records, for the diff in the history
    # (kept as ids: the row may be deleted, its history stays).
    mapping_id = models.PositiveIntegerField(null=True, blank=True, editable=False)
    mapping_history_id = models.PositiveIntegerField(null=True, blank=True, editable=False)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-changed_at", "-pk"]
        verbose_name_plural = "changelog entries"

    def __str__(self) -> str:
        return self.summary
