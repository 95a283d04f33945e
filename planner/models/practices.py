"""Practices the integration guides insist on, per connection: who owns it, how its failures
are handled, how its personal data is protected, and how existing records are moved."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .mapping import FieldMapping
from .projects import Connection, IntegrationProject
from .runs import ValidationRun
from .testing import ErrorScenario


class FailureClass(models.TextChoices):
    """Failures a connection meets, each transient (retry) or fatal (set the record aside)."""

    TIMEOUT = "timeout", "Timeout"
    RATE_LIMITED = "rate_limited", "Rate limited (429)"
    SERVER_ERROR = "server_error", "Server error (5xx)"
    LOCK_WAIT = "lock_wait", "Lock wait"
    VALIDATION = "validation", "Validation error"
    CLIENT_ERROR = "client_error", "Client error (4xx)"
    SCHEMA_CHANGE = "schema_change", "Schema change"


TRANSIENT_CLASSES = (
    FailureClass.TIMEOUT,
    FailureClass.RATE_LIMITED,
    FailureClass.SERVER_ERROR,
    FailureClass.LOCK_WAIT,
)
FATAL_CLASSES = (FailureClass.VALIDATION, FailureClass.CLIENT_ERROR, FailureClass.SCHEMA_CHANGE)
# The step-4 error scenario a generated test case of each class counts as.
SCENARIO_OF_CLASS = {
    FailureClass.TIMEOUT: ErrorScenario.TARGET_DOWN,
    FailureClass.SERVER_ERROR: ErrorScenario.TARGET_DOWN,
    FailureClass.RATE_LIMITED: ErrorScenario.VOLUME_SPIKE,
    FailureClass.LOCK_WAIT: ErrorScenario.OTHER,
    FailureClass.VALIDATION: ErrorScenario.INVALID_DATA,
    FailureClass.CLIENT_ERROR: ErrorScenario.INVALID_DATA,
    FailureClass.SCHEMA_CHANGE: ErrorScenario.INVALID_DATA,
}


class ConnectionOwnership(VersionedModel):
    """Ownership on paper: who owns the data, who owns the integration, who fixes incidents."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="ownerships"
    )
    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, related_name="ownership"
    )
    data_owner = models.CharField("data owner", max_length=120, blank=True)
    integration_owner = models.CharField("integration owner", max_length=120, blank=True)
    incident_resolver = models.CharField(
        "resolves incidents",
        max_length=120,
        blank=True,
        help_text="A member or a named team, e.g. 'Integrations on-call'.",
    )
    incident_contact = models.CharField(
        "incident contact",
        max_length=200,
        blank=True,
        help_text="How to reach them: email, pager or channel.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["connection__source__name", "connection__target__name", "pk"]

    @property
    def missing(self) -> list[str]:
        named = {
            "data owner": self.data_owner,
            "integration owner": self.integration_owner,
            "incident resolver": self.incident_resolver,
            "incident contact": self.incident_contact,
        }
        return [label for label, value in named.items() if not value.strip()]

    def __str__(self) -> str:
        return f"Owners of {self.connection}"


class ErrorStrategy(VersionedModel):
    """Error handling designed before go-live: what is retried, what is set aside, who hears."""

    class Destination(models.TextChoices):
        DEAD_LETTER = "dead_letter", "Dead-letter queue"
        ERROR_TABLE = "error_table", "Error table"
        MANUAL_REVIEW = "manual_review", "Manual review"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="error_strategies"
    )
    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, related_name="error_strategy"
    )
    transient = models.JSONField("transient failures (retried)", default=list, blank=True)
    fatal = models.JSONField("fatal failures (not retried)", default=list, blank=True)
    retry_attempts = models.PositiveSmallIntegerField(
        "retry attempts", null=True, blank=True, validators=[MaxValueValidator(100)]
    )
    backoff_seconds = models.PositiveIntegerField(
        "first backoff (s)", null=True, blank=True, help_text="Doubled after each attempt."
    )
    max_delay_seconds = models.PositiveIntegerField("max delay (s)", null=True, blank=True)
    failed_records_to = models.CharField(
        "failed records go to", max_length=16, choices=Destination.choices, blank=True
    )
    notify = models.CharField("who is notified", max_length=200, blank=True)
    notify_within_minutes = models.PositiveIntegerField(
        "notified within (min)", null=True, blank=True
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["connection__source__name", "connection__target__name", "pk"]

    @property
    def classes(self) -> list[str]:
        return [*self.transient, *self.fatal]

    @property
    def missing(self) -> list[str]:
        gaps = []
        if not self.transient and not self.fatal:
            gaps.append("failure classes")
        if self.transient and not (
            self.retry_attempts and self.backoff_seconds and self.max_delay_seconds
        ):
            gaps.append("retry policy (attempts, backoff, max delay)")
        if not self.failed_records_to:
            gaps.append("where failed records go")
        if not self.notify.strip() or self.notify_within_minutes is None:
            gaps.append("who is notified and how fast")
        return gaps

    def __str__(self) -> str:
        return f"Error handling of {self.connection}"


class SecurityReview(VersionedModel):
    """Security and privacy of one connection: access, encryption, retention, the last review."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="security_reviews"
    )
    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, related_name="security_review"
    )
    authentication = models.CharField(
        "authentication and least privilege",
        max_length=300,
        blank=True,
        help_text="e.g. OAuth client credentials, scope customers:read only.",
    )
    encrypted_in_transit = models.BooleanField("encrypted in transit", default=False)
    encrypted_at_rest = models.BooleanField("encrypted at rest", default=False)
    retention = models.CharField(
        "data retention", max_length=200, blank=True, help_text="e.g. 7 years, then deleted."
    )
    reviewed_on = models.DateField("last security review", null=True, blank=True)
    reviewer = models.CharField(max_length=120, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["connection__source__name", "connection__target__name", "pk"]

    def __str__(self) -> str:
        return f"Security of {self.connection}"


class PersonalField(VersionedModel):
    """A mapped field that carries personal data, with why it is processed and how long kept."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="personal_fields"
    )
    mapping = models.OneToOneField(
        FieldMapping, on_delete=models.CASCADE, related_name="personal", verbose_name="field"
    )
    purpose = models.CharField(max_length=200, blank=True)
    retention = models.CharField(max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["mapping__connection_id", "mapping__position", "pk"]

    def __str__(self) -> str:
        return f"{self.mapping.target_field} (personal)"


class BackfillPlan(VersionedModel):
    """How the records that already exist are moved, verified and, if need be, undone."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="backfill_plans"
    )
    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, related_name="backfill_plan"
    )
    no_history = models.BooleanField("no history to move", default=False)
    no_history_reason = models.CharField("why not", max_length=300, blank=True)
    record_count = models.PositiveIntegerField("existing records", null=True, blank=True)
    order = models.CharField(
        "in which order", max_length=200, blank=True, help_text="e.g. oldest first, by account."
    )
    throttle_per_minute = models.PositiveIntegerField(
        "throttle (records/min)", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    window = models.CharField(
        "window", max_length=200, blank=True, help_text="e.g. Saturday 22:00-06:00."
    )
    undo = models.CharField("how it is undone", max_length=300, blank=True)
    verification_run = models.ForeignKey(
        ValidationRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="backfills",
        verbose_name="verification run",
        help_text="The reconciliation run after the backfill.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["connection__source__name", "connection__target__name", "pk"]

    @property
    def missing(self) -> list[str]:
        if self.no_history:
            return [] if self.no_history_reason.strip() else ["the reason there is no history"]
        named = {
            "record count": self.record_count is not None,
            "order": self.order.strip(),
            "throttle": self.throttle_per_minute,
            "window": self.window.strip(),
            "undo": self.undo.strip(),
            "verification run": self.verification_run_id,
        }
        return [label for label, present in named.items() if not present]

    def __str__(self) -> str:
        return f"Backfill of {self.connection}"


class SystemProfile(VersionedModel):
    """Discovery, per system: how it can be reached, how well, and how busy it is."""

    class Api(models.TextChoices):
        REST = "rest", "REST"
        SOAP = "soap", "SOAP"
        DATABASE = "database", "Database"
        FILE_DROP = "file_drop", "File drop"
        NONE = "none", "None"

    class Docs(models.TextChoices):
        GOOD = "good", "Good"
        PARTIAL = "partial", "Partial"
        POOR = "poor", "Poor"
        NONE = "none", "None"

    class Auth(models.TextChoices):
        API_KEY = "api_key", "API key"
        OAUTH = "oauth_client", "OAuth client credentials"
        CERTIFICATE = "certificate", "Certificates"
        BASIC = "basic", "Basic"
        NONE = "none", "None"

    class Environment(models.TextChoices):
        SANDBOX = "sandbox", "Sandbox"
        TEST = "test", "Test"
        PRODUCTION = "production", "Production"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="system_profiles"
    )
    system = models.OneToOneField("System", on_delete=models.CASCADE, related_name="profile")
    api = models.CharField("API availability", max_length=10, choices=Api.choices, blank=True)
    documentation = models.CharField(
        "documentation quality", max_length=8, choices=Docs.choices, blank=True
    )
    rate_limits = models.CharField(
        "rate limits", max_length=200, blank=True, help_text="e.g. 100 requests/10 s."
    )
    authentication = models.CharField(max_length=14, choices=Auth.choices, blank=True)
    environments = models.JSONField("environments available", default=list, blank=True)
    volume = models.CharField("volume", max_length=200, blank=True)
    peak_periods = models.CharField("peak periods", max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["system__name", "pk"]

    @property
    def missing(self) -> list[str]:
        named = {
            "API availability": self.api,
            "documentation quality": self.documentation,
            "authentication method": self.authentication,
            "environments": self.environments,
        }
        return [label for label, value in named.items() if not value]

    def __str__(self) -> str:
        return f"Profile of {self.system}"


class RolloutPhase(VersionedModel):
    """One phase of a phased rollout: who gets it, behind which flag, what decides promotion
    and what rolls it back."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="rollout_phases"
    )
    position = models.PositiveIntegerField("order", validators=[MinValueValidator(1)])
    audience = models.CharField(
        "pilot group or canary", max_length=200, help_text="e.g. EMEA sales team, or 5 % canary."
    )
    canary_percent = models.DecimalField(
        "share %",
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )
    feature_flag = models.CharField("feature flag", max_length=120, blank=True)
    blast_radius = models.CharField(
        "blast radius", max_length=200, blank=True, help_text="What is hit if it goes wrong."
    )
    promote_on_criterion = models.ForeignKey(
        "SuccessCriterion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="promote when this criterion holds",
    )
    promote_on_monitor = models.ForeignKey(
        "Monitor",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="…or this monitor stays quiet",
    )
    promotion_note = models.CharField("promotion criteria", max_length=300, blank=True)
    rollback_trigger = models.ForeignKey(
        "RollbackTrigger",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="rollback trigger",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["position", "pk"]

    @property
    def missing(self) -> list[str]:
        gaps = []
        if not (self.promote_on_criterion_id or self.promote_on_monitor_id):
            gaps.append("a promotion criterion (success criterion or monitor)")
        if not self.rollback_trigger_id:
            gaps.append("a rollback trigger")
        if not self.blast_radius.strip():
            gaps.append("a blast radius")
        return gaps

    def __str__(self) -> str:
        return f"{self.position}. {self.audience}"
