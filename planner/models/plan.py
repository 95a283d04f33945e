"""Steps 4 to 7: the test plan, deployment and rollback, monitoring, training and feedback."""

from django.core.validators import MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .projects import IntegrationProject
from .steps import SuccessCriterion


class Comparator(models.TextChoices):
    GT = ">", ">"
    GTE = ">=", "≥"
    LT = "<", "<"
    LTE = "<=", "≤"
    EQ = "=", "="


class WindowUnit(models.TextChoices):
    MINUTES = "minutes", "minutes"
    HOURS = "hours", "hours"
    DAYS = "days", "days"


# ---------------------------------------------------------------------------------------------
# Step 4 — incremental test plan


class TestStage(models.IntegerChoices):
    """The stages in the order they are run: each one builds on the one before."""

    CONNECTION = 1, "Connection"
    SINGLE_FIELD = 2, "Single field"
    FULL_RECORD = 3, "Full record"
    BATCH = 4, "Batch"
    REVERSE = 5, "Reverse direction"
    ERRORS = 6, "Error scenarios"
    PARALLEL = 7, "Parallel run"


class ErrorScenario(models.TextChoices):
    TARGET_DOWN = "target_down", "Target system down"
    INVALID_DATA = "invalid_data", "Invalid data"
    VOLUME_SPIKE = "volume_spike", "Volume spike"
    OTHER = "other", "Other failure"


# The scenarios every test plan must cover; OTHER is welcome but optional.
REQUIRED_SCENARIOS = (
    ErrorScenario.TARGET_DOWN,
    ErrorScenario.INVALID_DATA,
    ErrorScenario.VOLUME_SPIKE,
)
DEFAULT_CUTOVER_RULE = (
    "Cut over only when the parallel run's results match the old integration's: same records, "
    "same values, no unexplained differences."
)


class TestPlan(VersionedModel):
    """Step 4's one-per-project part: how the parallel run ends in a cut-over."""

    __test__ = False  # not a pytest test class, despite the name

    project = models.OneToOneField(
        IntegrationProject, on_delete=models.CASCADE, related_name="test_plan"
    )
    parallel_run = models.TextField(
        "parallel run",
        blank=True,
        help_text="How long old and new run side by side, and what is compared.",
    )
    cutover_rule = models.TextField("cut-over rule", default=DEFAULT_CUTOVER_RULE)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return "Test plan"


class TestCase(VersionedModel):
    __test__ = False

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        BLOCKED = "blocked", "Blocked"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="test_cases"
    )
    stage = models.PositiveSmallIntegerField(choices=TestStage.choices)
    scenario = models.CharField(
        "error scenario",
        max_length=16,
        choices=ErrorScenario.choices,
        blank=True,
        help_text="For error-scenario cases only.",
    )
    position = models.PositiveIntegerField(default=0)
    description = models.CharField(max_length=300)
    data_set = models.CharField("data set", max_length=300, blank=True)
    expected_result = models.CharField("expected result", max_length=300, blank=True)
    pass_criterion = models.CharField(
        "pass/fail criterion",
        max_length=300,
        blank=True,
        help_text="What decides pass or fail, e.g. '0 rejected records, all 100 in the target'.",
    )
    owner = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PLANNED)
    evidence_file = models.FileField(
        "evidence file", upload_to="evidence/%Y/%m/", max_length=300, blank=True
    )
    evidence_note = models.CharField("evidence note", max_length=500, blank=True)
    # A validation run (issue 4) that evidences this case; linked from the run's page.
    validation_run = models.ForeignKey(
        "ValidationRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="test_cases",
        verbose_name="validation run",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["stage", "position", "pk"]

    @property
    def has_evidence(self) -> bool:
        return bool(self.evidence_file or self.evidence_note.strip() or self.validation_run_id)

    def __str__(self) -> str:
        return self.description


# ---------------------------------------------------------------------------------------------
# Step 5 — deployment and rollback


class DeploymentPlan(VersionedModel):
    class Rollout(models.TextChoices):
        FEATURE_FLAG = "feature_flag", "Feature flag"
        SUBSET = "subset", "Subset first (pilot group, region, % of records)"
        ALL_AT_ONCE = "all_at_once", "All at once"

    class Restore(models.TextChoices):
        CHANGE_LOG = "change_log", "Replay / undo from a change log"
        PARALLEL_OLD = "parallel_old", "Switch back to the old integration kept running"
        BACKUP = "backup", "Restore the target from a backup"
        OTHER = "other", "Other"

    class Rehearsal(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partly succeeded"
        FAILED = "failed", "Failed"

    project = models.OneToOneField(
        IntegrationProject, on_delete=models.CASCADE, related_name="deployment_plan"
    )
    pipeline = models.TextField(
        "pipeline steps", blank=True, help_text="One step per line: build, test, deploy, verify."
    )
    env_dev = models.CharField("development", max_length=300, blank=True)
    env_staging = models.CharField("staging", max_length=300, blank=True)
    env_prod = models.CharField("production", max_length=300, blank=True)
    rollout = models.CharField("rollout", max_length=16, choices=Rollout.choices, blank=True)
    rollout_plan = models.TextField(
        "rollout plan", blank=True, help_text="Which flag or subset first, and when to widen."
    )
    restore = models.CharField(
        "data restore approach", max_length=16, choices=Restore.choices, blank=True
    )
    restore_notes = models.TextField("data restore notes", blank=True)
    rehearsed_on = models.DateField("rollback rehearsed on", null=True, blank=True)
    rehearsal_result = models.CharField(
        "rehearsal result", max_length=10, choices=Rehearsal.choices, blank=True
    )
    rehearsal_notes = models.TextField("rehearsal notes", blank=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return "Deployment plan"


class RollbackTrigger(VersionedModel):
    """A measurable condition that means: roll back now. 'error rate > 5 % over 15 minutes'."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="rollback_triggers"
    )
    metric = models.CharField(max_length=120)
    comparator = models.CharField(max_length=2, choices=Comparator.choices, default=">")
    threshold = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    unit = models.CharField(max_length=40, blank=True)
    window_value = models.PositiveIntegerField("window", null=True, blank=True)
    window_unit = models.CharField(
        max_length=8, choices=WindowUnit.choices, default=WindowUnit.MINUTES
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["pk"]

    @property
    def is_measurable(self) -> bool:
        return bool(self.metric.strip()) and self.threshold is not None and bool(self.window_value)

    def __str__(self) -> str:
        return self.metric


class RollbackStep(VersionedModel):
    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="rollback_steps"
    )
    position = models.PositiveIntegerField("order", validators=[MinValueValidator(1)])
    action = models.CharField(max_length=300)
    owner = models.CharField(max_length=120, blank=True)
    expected_minutes = models.PositiveIntegerField("expected minutes", null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return f"{self.position}. {self.action}"


# ---------------------------------------------------------------------------------------------
# Step 6 — monitoring


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


# ---------------------------------------------------------------------------------------------
# Step 7 — training and feedback

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
