"""Step 4: the incremental test plan (stages, error scenarios, cases with evidence)."""

from django.db import models
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .projects import IntegrationProject


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
    # Cut over only after the parallel run held a success criterion's objective for N days:
    # go-live reads its compliance over those days.
    gate_criterion = models.ForeignKey(
        "SuccessCriterion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="compliance required of",
        help_text="A step-1 criterion whose compliance must hold before cut-over.",
    )
    gate_days = models.PositiveSmallIntegerField(
        "over the last (days)",
        null=True,
        blank=True,
        help_text="How many days of the parallel run must meet the criterion's objective.",
    )
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
    # A validation run that evidences this case; linked from the run's page.
    validation_run = models.ForeignKey(
        "ValidationRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="test_cases",
        verbose_name="validation run",
    )
    # A run that did not pass evidences a passed case only if the team says which of its
    # findings they accept, and why.
    accepted_findings = models.TextField(
        "accepted findings",
        blank=True,
        help_text="If the linked run did not pass: which of its findings are accepted, and why.",
    )
    # Set on the cases generated from a connection's error-handling strategy (step 2): the
    # failure class the case exercises, so readiness can tell which classes are covered.
    connection = models.ForeignKey(
        "Connection", on_delete=models.CASCADE, null=True, blank=True, related_name="test_cases"
    )
    failure_class = models.CharField("failure class", max_length=16, blank=True)
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


# ---------------------------------------------------------------------------------------------
# Step 6 — monitoring


# ---------------------------------------------------------------------------------------------
# Step 7 — training and feedback
