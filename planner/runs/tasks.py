"""Celery tasks of validation runs: thin wrappers around planner.runs.service.

Registered by aethon/celery.py (worker) and planner/apps.py (every process), under the names they
had before the package layout, which queued messages and beat rows carry.
Settings make every task ack late and be rejected (requeued) when its worker process dies; the
run's own claim/heartbeat bookkeeping turns such a redelivery into a failed run with a reason.
`reap_after_worker_start` is connected to Celery's `worker_ready` in aethon/celery.py.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.db import connection as db

from planner.checklist import standing
from planner.metrics import slo
from planner.models import Connection, RunKind, RunPartition, SuccessCriterion, ValidationRun
from planner.runs import alerts, canary
from planner.runs import service as validation
from planner.runs.alerts import evaluate_run
from planner.runs.freshness_schedule import drop_measurement
from planner.runs.schedules import drop_schedule

log = logging.getLogger(__name__)

# A run and each key range of a split run: acknowledged when done, requeued when the worker
# dies. The soft limit raises inside the work, which then fails with the reason; the hard
# limit (a minute later) kills the process, and the reaper or the redelivery ends it.
RUN_WORK = dict(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.AETHON_RUN_TIME_LIMIT,
    time_limit=settings.AETHON_RUN_TIME_LIMIT + 60,
)


@shared_task(name=validation.RUN_TASK, **RUN_WORK)
def run_validation(self, run_id: int) -> None:
    if not ValidationRun.objects.filter(pk=run_id).exists():
        # Published from inside a transaction that has not committed yet (or the run was
        # deleted with its connection): look again shortly, then give up.
        raise self.retry(countdown=1, max_retries=10)
    run = validation.execute_run(run_id, task_id=self.request.id or "")
    _after_run(run)


def _after_run(run: ValidationRun | None) -> None:
    if run is None or run.is_active:
        return
    if run.trigger == ValidationRun.Trigger.SCHEDULE:
        # A scheduled run checks the step-6 thresholds: alerts open and clear on their own.
        try:
            evaluate_run(run, source=f"scheduled validation run #{run.number}")
        except Exception:  # the run's own result is stored; alerting must not undo it
            log.exception("alerts of validation run %s failed", run.pk)
    # A finished run is a write to its project like a page's: the lists read its standing.
    try:
        standing.store(run.project)
    except Exception:  # the run's own result is stored; lists compute what is missing
        log.exception("standing of project %s after run %s failed", run.project_id, run.pk)


@shared_task(name=validation.PARTITION_TASK, **RUN_WORK)
def run_partition(self, partition_id: int) -> None:
    """One key range of a large run; a redelivery after its worker died compares it again."""
    if not RunPartition.objects.filter(pk=partition_id).exists():
        raise self.retry(countdown=1, max_retries=10)  # published before its commit
    _after_run(validation.execute_partition(partition_id, task_id=self.request.id or ""))


@shared_task(name="planner.validation_tasks.reap_stale_runs", ignore_result=True)
def reap_stale_runs() -> int:
    return validation.reap_stale_runs()


def reap_after_worker_start(sender=None, **_kwargs) -> None:
    """A worker that starts ends what a killed worker left behind, beat or no beat.

    A worker killed as a whole (SIGKILL, OOM, machine lost) leaves its run 'running' and its
    task unacknowledged for up to the broker's visibility timeout; without beat nothing else
    would notice. Runs already stale are failed now; one killed just before this start is not
    stale yet, so one more reap is queued for when it would be.
    """
    try:
        reaped = validation.reap_stale_runs()
        if ValidationRun.objects.filter(status=ValidationRun.Status.RUNNING).exists():
            reap_stale_runs.apply_async(
                countdown=settings.AETHON_RUN_STALE_SECONDS + 1, **_own_queue(sender)
            )
        if reaped:
            log.warning("worker start: %s validation run(s) of a stopped worker failed", reaped)
    except Exception:  # a worker that cannot reap must still start and work
        log.exception("reaping stale validation runs at worker start failed")
    finally:
        if not db.in_atomic_block:  # (a caller's transaction is left alone)
            db.close()  # the worker's main process keeps no idle database connection


def _own_queue(consumer) -> dict:
    """Route the follow-up reap to a queue this worker consumes, so that it runs it itself."""
    queues = getattr(getattr(consumer, "task_consumer", None), "queues", None) or []
    return {"queue": queues[0].name} if queues else {}


@shared_task(name="planner.validation_tasks.scheduled_validation", ignore_result=True)
def scheduled_validation(connection_id: int) -> int | None:
    """Started by a connection's beat entry (RunSchedule); returns the run's id."""
    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is None:
        drop_schedule(connection_id)  # the connection was deleted: its schedule goes too
        return None
    if connection.project.archived:
        # Archived means read-only: no run, no alert; the schedule resumes on restore.
        log.info("scheduled validation of connection %s skipped: project archived", connection_id)
        return None
    try:
        run = validation.start_validation_run(
            connection, None, kind=RunKind.VALIDATION, trigger=ValidationRun.Trigger.SCHEDULE
        )
    except validation.RunRefused as exc:
        log.warning("scheduled validation of connection %s refused: %s", connection_id, exc)
        return None
    return run.pk


@shared_task(name="planner.alert_tasks.remind_and_escalate", ignore_result=True)
def remind_and_escalate() -> dict:
    """Every minute (beat entry from migration 0007): reminders and escalation of open alerts."""
    return alerts.remind_and_escalate()


@shared_task(
    name="planner.freshness_tasks.measure",
    ignore_result=True,
    soft_time_limit=settings.AETHON_RUN_TIME_LIMIT,
    time_limit=settings.AETHON_RUN_TIME_LIMIT + 60,
)
def measure_freshness(criterion_id: int) -> int | None:
    """A criterion's beat entry or 'Measure now': one measurement, one point (its id)."""
    criterion = SuccessCriterion.objects.filter(pk=criterion_id).first()
    if criterion is None:
        drop_measurement(criterion_id)  # the criterion was deleted: its entry goes too
        return None
    # The measurement reads the systems (connectors, polars): loaded when it runs.
    from planner.runs import freshness

    point = freshness.measure_and_record(criterion)
    if canary.probe_of(criterion) is not None:
        # An enabled canary probe rides on the criterion's schedule; a disabled one does nothing.
        canary.probe_and_record(criterion)
    return point.pk if point is not None else None


@shared_task(
    name="planner.freshness_tasks.canary",
    ignore_result=True,
    soft_time_limit=settings.AETHON_RUN_TIME_LIMIT,
    time_limit=settings.AETHON_RUN_TIME_LIMIT + 60,
)
def probe_canary(criterion_id: int) -> int | None:
    """'Probe now': one canary probe, one point (its id), or the reason on the probe."""
    criterion = SuccessCriterion.objects.filter(pk=criterion_id).first()
    if criterion is None:
        return None
    point = canary.probe_and_record(criterion)
    return point.pk if point is not None else None


@shared_task(name="planner.slo_tasks.roll_up", ignore_result=True)
def roll_up() -> int:
    """Beat entry (migration 0014): fold raw service-level points older than a few days."""
    return slo.roll_up()
