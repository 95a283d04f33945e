"""Validation runs: proof, against the real systems, that a connection's mapping works.

A run is written only by the worker executing it (progress, stages, results) and by the
reaper/cancel paths; it never changes the project's artifacts.
"""

from django.conf import settings
from django.db import models, transaction
from django.db.models import Max
from django.utils import timezone
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .projects import Connection, IntegrationProject, System
from .systems_config import private_storage


class RunKind(models.TextChoices):
    VALIDATION = "validation", "Validation"
    PARALLEL = "parallel", "Parallel run"


# The stages of each kind of run, in order.
STAGE_NAMES = {
    RunKind.VALIDATION: ("connectivity", "schema", "mapping", "reconciliation"),
    RunKind.PARALLEL: ("connectivity", "schema", "parallel"),
}
STAGE_LABELS = {
    "connectivity": "Connectivity",
    "schema": "Schema check",
    "mapping": "Mapping validation",
    "reconciliation": "Reconciliation",
    "parallel": "Old vs new output",
}


class ValidationRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Trigger(models.TextChoices):
        UI = "ui", "Started from the page"
        API = "api", "Started through the API"
        SCHEDULE = "schedule", "Scheduled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="validation_runs"
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="validation_runs"
    )
    # The run's number within its project (#1, #2, ...), shown on pages, the API and the PDF;
    # URLs keep the primary key.
    number = models.PositiveIntegerField(editable=False)
    kind = models.CharField(max_length=10, choices=RunKind.choices, default=RunKind.VALIDATION)
    # For a parallel run: the system holding the old process's output.
    baseline = models.ForeignKey(
        System, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=20, blank=True)
    records_done = models.BigIntegerField(default=0)
    records_total = models.BigIntegerField(null=True, blank=True)
    rate = models.FloatField(null=True, blank=True, help_text="Records per second.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.UI)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    celery_task_id = models.CharField(max_length=64, blank=True)
    # Each delivery of the task that starts the run bumps `attempt`; the worker writes only
    # while the run is still running under its own attempt, so a stale or repeated delivery
    # can never write a second set of results.
    attempt = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the attempt")
    cancel_requested = models.BooleanField(default=False)
    max_differences = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Stop comparing after this many differences (blank: compare everything).",
    )
    sample_percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Compare only this share of keys, chosen by a hash of the key (blank: all).",
    )
    summary = models.JSONField(default=dict, blank=True)
    # A run split into key ranges (RunPartition): the mapping rows as the run started, so every
    # range and the merge apply the same rules, and the reading's shared figures.
    partition_plan = models.JSONField(default=dict, blank=True)
    settings_snapshot = models.JSONField(default=dict, blank=True)
    differences_file = models.FileField(
        upload_to="runs/", storage=private_storage, max_length=300, blank=True
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["project", "-created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "number"], name="one_run_number_per_project"
            ),
            # One queued or running run per connection and kind (double clicks, schedules).
            models.UniqueConstraint(
                fields=["connection", "kind"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_active_run_per_connection_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.number} of {self.connection}"

    def save(self, *args, **kwargs):
        if self.number is None:
            with transaction.atomic():
                # The project row is locked until the transaction ends, so two runs started
                # at once wait for each other instead of taking the same number.
                list(
                    IntegrationProject.objects.select_for_update()
                    .filter(pk=self.project_id)
                    .values_list("pk")
                )
                last = ValidationRun.objects.filter(project_id=self.project_id).aggregate(
                    n=Max("number")
                )["n"]
                self.number = (last or 0) + 1
                return super().save(*args, **kwargs)
        return super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return max((end - self.started_at).total_seconds(), 0.0)

    @property
    def percent(self) -> int | None:
        if not self.records_total:
            return None
        return min(100, round(100 * self.records_done / self.records_total))


class RunPartition(models.Model):
    """One key range of a large run, compared by whichever worker takes it.

    ``lo``/``hi`` are the range's bounds in the compared key's order (a list of key values, or
    null for open), ``lo`` included, ``hi`` excluded; the last range also holds the rows with a
    null key part, so those are counted once. ``result`` keeps the range's counts and examples
    (its difference lists are files) until the last range to finish merges them into the run.
    Each claim bumps ``attempt``; a partition writes only under its own attempt.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        STOPPED = "stopped", "Stopped"  # the run ended first (cancelled, failed)

    run = models.ForeignKey(ValidationRun, on_delete=models.CASCADE, related_name="partitions")
    index = models.PositiveIntegerField()
    lo = models.JSONField(null=True, blank=True)
    hi = models.JSONField(null=True, blank=True)
    null_keys = models.BooleanField(default=False, help_text="Also holds the null-key rows.")
    rows_estimate = models.BigIntegerField(null=True, blank=True, help_text="Source rows.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempt = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the attempt")
    celery_task_id = models.CharField(max_length=64, blank=True)
    records_done = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why the last attempt was lost.")
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "index"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="one_partition_per_index")
        ]

    def __str__(self) -> str:
        return f"partition {self.index + 1} of run {self.run_id}"


class RunStage(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    run = models.ForeignKey(ValidationRun, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=20)
    position = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    figures = models.JSONField(default=dict, blank=True)
    examples = models.JSONField(default=list, blank=True)  # capped, see planner.runs.stages
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            # One row per stage and run, however often the task is delivered.
            models.UniqueConstraint(fields=["run", "name"], name="one_stage_per_run")
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return STAGE_LABELS.get(self.name, self.name)


class RunSchedule(VersionedModel):
    """Per connection: when validation runs start on their own, and the parallel-run baseline."""

    class Every(models.TextChoices):
        OFF = "off", "Off"
        HOURLY = "hourly", "Hourly"
        DAILY = "daily", "Daily"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="run_schedules"
    )
    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, related_name="run_schedule"
    )
    every = models.CharField(
        "scheduled validation", max_length=8, choices=Every.choices, default=Every.OFF
    )
    baseline = models.ForeignKey(
        System,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="old process's output",
        help_text="For parallel runs: the system (or copy) holding the old integration's output.",
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = "validation schedule"

    def __str__(self) -> str:
        return f"Validation schedule of {self.connection}"
