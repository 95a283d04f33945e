"""Step 2: the data mapping of each connection, an executable specification."""

from django.db import models
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .projects import Connection, IntegrationProject


class FieldType(models.TextChoices):
    STRING = "string", "string"
    INTEGER = "integer", "integer"
    DECIMAL = "decimal", "decimal"
    BOOLEAN = "boolean", "boolean"
    DATE = "date", "date"
    DATETIME = "datetime", "datetime"


class FieldMapping(VersionedModel):
    class NullRule(models.TextChoices):
        REJECT = "reject", "Reject the record"
        DEFAULT = "default", "Use a default value"
        SKIP = "skip", "Skip the field"

    class Direction(models.TextChoices):
        ONE_WAY = "one_way", "One-way"
        BIDIRECTIONAL = "bidirectional", "Bidirectional"

    class Frequency(models.TextChoices):
        REAL_TIME = "real_time", "Real-time"
        MINUTES = "minutes", "Every N minutes"
        DAILY = "daily", "Daily batch"

    class Truth(models.TextChoices):
        SOURCE = "source", "Source system"
        TARGET = "target", "Target system"

    class Conflict(models.TextChoices):
        TRUTH_WINS = "truth_wins", "Source of truth wins"
        LAST_WRITE = "last_write", "Last write wins"
        MANUAL = "manual", "Manual review"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="field_mappings"
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="field_mappings"
    )
    position = models.PositiveIntegerField(default=0)
    source_field = models.CharField(max_length=200)
    target_field = models.CharField(max_length=200)
    source_type = models.CharField(max_length=10, choices=FieldType.choices, blank=True)
    target_type = models.CharField(max_length=10, choices=FieldType.choices, blank=True)
    max_length = models.PositiveIntegerField("target max length", null=True, blank=True)
    required = models.BooleanField(default=False, help_text="The target field may not be null.")
    null_rule = models.CharField(max_length=8, choices=NullRule.choices, blank=True)
    null_default = models.CharField("default value", max_length=200, blank=True)
    rule = models.TextField(
        "transformation",
        blank=True,
        help_text="A pipeline of named transforms, e.g. trim | lower | map(active=1, "
        "inactive=0). Write 'identity' when the value passes unchanged.",
    )
    tolerance = models.CharField(
        max_length=40,
        blank=True,
        help_text="How far the target may differ and still agree. Empty: exactly equal. A "
        "number (0.000001) is an absolute difference and a percentage (0.5%) a relative one, "
        "for numbers; a duration (1s, 500ms, 5min, 1h, 1d) for dates and timestamps.",
    )
    direction = models.CharField(
        max_length=16, choices=Direction.choices, default=Direction.ONE_WAY
    )
    frequency = models.CharField(
        "sync frequency", max_length=10, choices=Frequency.choices, default=Frequency.REAL_TIME
    )
    every_minutes = models.PositiveIntegerField("every N minutes", null=True, blank=True)
    source_of_truth = models.CharField(max_length=6, choices=Truth.choices, default=Truth.SOURCE)
    conflict_rule = models.CharField(max_length=12, choices=Conflict.choices, blank=True)
    notes = models.TextField("notes and edge cases", blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["connection", "position", "pk"]
        indexes = [models.Index(fields=["connection", "position"])]

    def __str__(self) -> str:
        return f"{self.source_field} → {self.target_field}"


class ValueMeaning(models.Model):
    """What a project's spreadsheets mean by a value the importer's vocabulary does not know
    (e.g. 'every fortnight' -> weekly), chosen once in the value-matching step and reused."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="value_meanings"
    )
    field = models.CharField(max_length=20)
    value = models.CharField(max_length=200, help_text="Lower-case, spacing collapsed.")
    meaning = models.CharField(max_length=40)
    chosen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "field", "value"], name="one_meaning_per_value"
            )
        ]

    def __str__(self) -> str:
        return f"{self.field}: {self.value} -> {self.meaning}"
