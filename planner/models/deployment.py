"""Step 5: the deployment plan, measurable rollback triggers and ordered rollback steps."""

from django.core.validators import MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from .base import Comparator, VersionedModel, WindowUnit
from .projects import IntegrationProject


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
