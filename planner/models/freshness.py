"""Freshness (propagation lag): which field on each side of a connection tells when a record
changed, and the state of each freshness criterion's continuous measurement."""

from django.db import models
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .objectives import SuccessCriterion
from .projects import Connection, IntegrationProject


class FreshnessSettings(VersionedModel):
    """Step 2, per connection: the change-time field on each side and the clock-skew allowance."""

    class Basis(models.TextChoices):
        CHANGED = "changed", "when a record last changed"
        CREATED = "created", "when a record was created (new records)"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="freshness_settings"
    )
    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, related_name="freshness"
    )
    basis = models.CharField(
        "the times say", max_length=8, choices=Basis.choices, default=Basis.CHANGED
    )
    source_time_field = models.CharField(
        "source time field", max_length=120, help_text="e.g. updated_at in the source."
    )
    target_time_field = models.CharField(
        "target time field", max_length=120, help_text="e.g. synced_at in the target."
    )
    skew_seconds = models.PositiveIntegerField(
        "clock-skew allowance (s)",
        default=0,
        help_text="How far the two systems' clocks may disagree.",
    )
    overlap_seconds = models.PositiveIntegerField(
        "re-read overlap (s)",
        default=300,
        help_text="Each measurement re-reads records changed this long before the last one.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["connection__source__name", "connection__target__name", "pk"]
        verbose_name_plural = "freshness settings"

    def __str__(self) -> str:
        return f"Freshness of {self.connection}"


class FreshnessState(models.Model):
    """Where a criterion's measurements stand: bookkeeping of the schedule, not an artifact.

    `counted_until` is the instant before which every changed record has been counted in a
    point; the next measurement counts the records changed from there on.
    """

    criterion = models.OneToOneField(
        SuccessCriterion, on_delete=models.CASCADE, related_name="freshness_state"
    )
    counted_until = models.DateTimeField(null=True, blank=True)
    measured_at = models.DateTimeField(null=True, blank=True)
    pending = models.BigIntegerField(null=True, blank=True)
    unmeasured = models.BigIntegerField(
        null=True, blank=True, help_text="Records read without a change time."
    )
    late_examples = models.JSONField(default=list, blank=True)
    figures = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Freshness measurement of criterion {self.criterion_id}"


class CanaryProbe(VersionedModel):
    """Step 1, per connection: the optional active probe of propagation lag.

    It writes a tagged test record into the source through an endpoint the team names, polls
    the target until the record shows and deletes it again. Off by default: it writes into a
    live system. Its write credential is a sealed secret of its own (bound to the source's
    origin), never the connection's read credentials.
    """

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="canary_probes"
    )
    connection = models.OneToOneField(Connection, on_delete=models.CASCADE, related_name="canary")
    enabled = models.BooleanField("probe enabled", default=False)
    create_url = models.URLField(
        "source create URL", max_length=500, help_text="POSTed the JSON body below."
    )
    create_body = models.TextField(
        "create body (JSON)",
        help_text='JSON with a {tag} placeholder, e.g. {"email": "{tag}@example.invalid"}.',
    )
    delete_url = models.CharField(
        "source delete URL",
        max_length=500,
        help_text="DELETEd afterwards; {tag} is replaced by the test record's tag.",
    )
    lookup_url = models.CharField(
        "target lookup URL",
        max_length=500,
        help_text="GET; the record has arrived when it answers 200 with the tag in the body.",
    )
    credential_header = models.CharField(
        "write credential header", max_length=100, default="Authorization"
    )
    # Sealed (planner.runs.secrets.seal) with the source origin it was entered for.
    credential_token = models.TextField(blank=True, editable=False)
    poll_seconds = models.PositiveIntegerField("poll every (s)", default=5)
    timeout_seconds = models.PositiveIntegerField("give up after (s)", default=600)
    last_probe_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_seconds = models.FloatField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    error_at = models.DateTimeField(null=True, blank=True, editable=False)
    cleanup_error = models.TextField(blank=True, editable=False)
    history = HistoricalRecords(
        excluded_fields=[
            "credential_token",
            "last_probe_at",
            "last_seconds",
            "last_error",
            "error_at",
            "cleanup_error",
        ]
    )

    def __str__(self) -> str:
        return f"Canary probe of {self.connection}"
