"""Validation runs as plain functions: start, execute (in a Celery worker), cancel, reap.

A view, the API and the beat schedule all call `start_validation_run`; the Celery task only
calls `execute_run`. Liveness: the worker beats a heartbeat into the run row; a run whose
heartbeat goes stale (worker killed, machine lost) is marked failed by `reap_stale_runs`
(every minute from beat, when a worker starts, and when a new run of the same connection
is started or the run is cancelled), and a second delivery of the task (Celery requeues it
when a pool process dies, acks_late) notices the dead attempt and fails the run with the
reason instead of running it twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, QuerySet, Sum
from django.urls import reverse
from django.utils import timezone

from planner.metrics import figures as kpis
from planner.metrics.points import record_point
from planner.models import (
    Connection,
    FieldMapping,
    Membership,
    NotificationKind,
    Role,
    RunKind,
    RunPartition,
    RunSchedule,
    RunStage,
    SuccessCriterion,
    ValidationRun,
)
from planner.models.runs import STAGE_LABELS, STAGE_NAMES
from planner.notify.service import notify
from planner.runs.endpoints import endpoint_of
from planner.task_queue import QueueUnreachable, publish

if TYPE_CHECKING:
    import polars as pl

    from planner.runs.stages import CompareOutcome, Side, StageResult
    from planner.runs.streamed import Streamed

# The stages, the connectors and polars load when a run executes (planner.runs.stages,
# planner.runs.streamed), not when the web process or an idle worker imports this module.

log = logging.getLogger(__name__)

Status = ValidationRun.Status
QUEUE_UNREACHABLE = (
    "The task queue is unreachable, so the run could not start. Check that the broker"
    " (CELERY_BROKER_URL) is up, then start the run again."
)
PROGRESS_EVERY = 0.5  # seconds between progress writes
# Seconds between two looks at the cancel flag by the heartbeat thread (at most the heartbeat
# interval): a cancel reaches a run blocked in a download within about this long.
CANCEL_POLL = 1.0
FETCH_BATCH = 10_000
# The run's Celery task (planner/runs/tasks.py), published by name so that this module does
# not import the tasks built on it. The name predates the package layout: queued messages
# and beat entries carry it.
RUN_TASK = "planner.validation_tasks.run_validation"
# One key range of a partitioned run (planner.runs.partitions).
PARTITION_TASK = "planner.validation_tasks.run_partition"


class RunRefused(ValueError):
    """The run cannot start; the message says what to do."""


class RunCancelled(Exception):
    pass


class RunLost(Exception):
    """The run is no longer this attempt's to write (reaped, or finished by another path)."""


class RunRefusedDuringRun(Exception):
    """Something the run needs disappeared between queueing and running."""


class RunHandedOver(Exception):
    """The run was split into partitions: their tasks carry it on and finish it."""


# ---------------------------------------------------------------------------------------------
# Starting


def _baseline(connection: Connection, kind: str):
    if kind != RunKind.PARALLEL:
        return None
    schedule = RunSchedule.objects.filter(connection=connection).select_related("baseline").first()
    baseline = schedule.baseline if schedule else None
    if baseline is None:
        raise RunRefused(
            "A parallel run compares the old process's output with the new one's: choose the"
            " system holding the old output for this connection first."
        )
    if baseline.pk == connection.target_id:
        raise RunRefused("The old process's output must be a different system than the target.")
    return baseline


def settings_missing(connection: Connection, configured: set[int] | None = None) -> str:
    """Why no run can start on this connection for lack of connection settings, or "".

    `configured` (ids of systems that have settings) saves the query when a page asks for
    many connections.
    """
    systems = [connection.source, connection.target]
    if configured is None:
        # endpoint_of caches on the system, so the run's settings snapshot reuses these reads.
        configured = {s.pk for s in systems if endpoint_of(s) is not None}
    missing = [s.name for s in systems if s.pk not in configured]
    if not missing:
        return ""
    names = " and ".join(missing)
    return (
        f"{names} {'has' if len(missing) == 1 else 'have'} no connection settings yet: "
        "configure how Aethon reads them first."
    )


def start_validation_run(
    connection: Connection,
    user=None,
    kind: str = RunKind.VALIDATION,
    trigger: str = ValidationRun.Trigger.UI,
    *,
    publish: bool = True,
    max_differences: int | None = None,
    sample_percent: int | None = None,
) -> ValidationRun:
    """Queue a run of `connection` and hand it to a worker; returns it (maybe already failed).

    `publish=False` leaves the queued run to the caller (a health review executes its runs
    itself with `execute_run`).

    One run per connection and kind is active at a time: starting again while one is queued or
    running returns that run (a double click or an overlapping schedule starts nothing new).
    An active run whose worker stopped beating is failed first (with the reason), so that a
    worker killed while no beat runs to reap it cannot block the connection for good.
    Raises RunRefused when the run cannot make sense (a parallel run without a baseline).
    `max_differences` stops the comparison once that many differences were found;
    `sample_percent` compares only that share of the keys (the same keys on both sides).
    """
    kind = RunKind(kind)
    if max_differences is not None and max_differences < 1:
        raise RunRefused("Stop after N differences: N must be at least 1.")
    if reason := settings_missing(connection):
        raise RunRefused(reason)
    if sample_percent is not None and not 1 <= sample_percent <= 99:
        raise RunRefused("Sample: give a percentage of keys from 1 to 99, or leave it blank.")
    baseline = _baseline(connection, kind)
    active = ValidationRun.objects.filter(
        connection=connection, kind=kind, status__in=ValidationRun.ACTIVE
    )
    reap_stale_runs(runs=active)
    if existing := active.first():
        return existing
    try:
        with transaction.atomic():
            run = ValidationRun.objects.create(
                project_id=connection.project_id,
                connection=connection,
                kind=kind,
                baseline=baseline,
                trigger=trigger,
                triggered_by=user if getattr(user, "pk", None) else None,
                settings_snapshot=_snapshot(connection, baseline),
                max_differences=max_differences,
                sample_percent=sample_percent,
            )
            RunStage.objects.bulk_create(
                RunStage(run=run, name=name, position=i) for i, name in enumerate(STAGE_NAMES[kind])
            )
    except IntegrityError:
        # Another request created the active run between our check and insert.
        if existing := active.first():
            return existing
        raise
    if publish:
        dispatch(run)
    return run


def _snapshot(connection: Connection, baseline) -> dict:
    """What the run was checked against (non-secret), so old results stay interpretable."""
    out = {"mapping_rows": FieldMapping.objects.filter(connection=connection).count()}
    systems = [("source", connection.source), ("target", connection.target)]
    if baseline is not None:
        systems.append(("old output", baseline))
    for role, system in systems:
        ep = endpoint_of(system)
        out[role] = {
            "system": system.name,
            "kind": ep.kind if ep else "",
            "dataset": (ep.dataset or ep.upload_name) if ep else "",
            "key": ep.key_fields if ep else "",
            "settings_version": ep.version if ep else None,
        }
    return out


def dispatch(run: ValidationRun) -> None:
    """Publish the task; if the broker cannot be reached, the run fails saying so."""
    from aethon.celery import app

    try:
        result = publish(app.tasks[RUN_TASK], run.pk)
    except QueueUnreachable:
        fail_run(run.pk, QUEUE_UNREACHABLE, from_status=(Status.QUEUED,))
        run.refresh_from_db()
        return
    ValidationRun.objects.filter(pk=run.pk, celery_task_id="").update(celery_task_id=result.id)
    run.refresh_from_db()


def dispatch_partition(part: RunPartition) -> None:
    """Queue one key range; a broker that is down leaves it for the reaper to hand over."""
    from aethon.celery import app

    try:
        result = publish(app.tasks[PARTITION_TASK], part.pk, **_this_queue())
    except QueueUnreachable:
        log.warning("validation run %s: %s not queued: broker unreachable", part.run_id, part)
        return
    RunPartition.objects.filter(pk=part.pk, status=RunPartition.Status.QUEUED).update(
        celery_task_id=result.id
    )


def _this_queue() -> dict:
    """Inside a task: its queue, so a run's partitions go where its workers listen."""
    from celery import current_task

    request = getattr(current_task, "request", None)
    info = getattr(request, "delivery_info", None) or {}
    return {"queue": info["routing_key"]} if info.get("routing_key") else {}


# ---------------------------------------------------------------------------------------------
# Ending: cancel, fail, reap


def fail_run(
    run_id: int,
    reason: str,
    *,
    status: str = Status.FAILED,
    attempt: int | None = None,
    from_status: tuple[str, ...] = ValidationRun.ACTIVE,
) -> bool:
    """End an active run with `reason`; unfinished stages are marked. False if not active."""
    from planner.runs import partitions

    with transaction.atomic():
        runs = ValidationRun.objects.filter(pk=run_id, status__in=from_status)
        if attempt is not None:
            runs = runs.filter(attempt=attempt)
        now = timezone.now()
        if not runs.update(status=status, error=reason[:2000], finished_at=now):
            return False
        stages = RunStage.objects.filter(run_id=run_id)
        interrupted = (
            RunStage.Status.SKIPPED if status == Status.CANCELLED else RunStage.Status.FAILED
        )
        stages.filter(status=RunStage.Status.RUNNING).update(
            status=interrupted, error=reason[:2000], finished_at=now
        )
        stages.filter(status=RunStage.Status.PENDING).update(status=RunStage.Status.SKIPPED)
        RunPartition.objects.filter(
            run_id=run_id, status__in=[RunPartition.Status.QUEUED, RunPartition.Status.RUNNING]
        ).update(status=RunPartition.Status.STOPPED, finished_at=now)
        transaction.on_commit(lambda: partitions.drop_partials(run_id))
        if status == Status.FAILED:
            run = ValidationRun.objects.select_related("connection").filter(pk=run_id).first()
            if run is not None:
                tell_run_failed(run, reason)
    return True


def tell_run_failed(run: ValidationRun, reason: str) -> None:
    """Notify the project's owners and editors, and whoever started the run, that it failed."""
    people = set(
        Membership.objects.filter(
            project_id=run.project_id, role__in=[Role.OWNER, Role.EDITOR]
        ).values_list("user_id", flat=True)
    )
    if run.triggered_by_id:
        people.add(run.triggered_by_id)
    notify(
        people,
        run.project,
        NotificationKind.RUN_FAILED,
        f"Validation run #{run.pk} on {run.connection} failed: {reason}",
        reverse("planner:run_show", args=[run.project_id, run.pk]),
    )


def cancel_run(run: ValidationRun) -> ValidationRun:
    """A queued run ends at once; a running one stops within a few seconds (its heartbeat
    thread sees the flag), and one whose worker is gone (stale heartbeat) ends at once."""
    ended = fail_run(
        run.pk,
        "Cancelled before a worker started it.",
        status=Status.CANCELLED,
        from_status=(Status.QUEUED,),
    )
    if not ended:
        running = ValidationRun.objects.filter(pk=run.pk, status=Status.RUNNING)
        if running.update(cancel_requested=True):
            reap_stale_runs(runs=running)  # no worker is left to notice the flag
            if not _partitions_at_work(run.pk):
                # Split into partitions none of which a worker is comparing: queued ones will
                # do nothing when they arrive, so nobody is left to end the run but us.
                fail_run(
                    run.pk, "Cancelled.", status=Status.CANCELLED, from_status=(Status.RUNNING,)
                )
    run.refresh_from_db()
    return run


def _partitions_at_work(run_id: int) -> bool:
    """False for a partitioned run none of whose partitions is being compared right now."""
    parts = RunPartition.objects.filter(run_id=run_id)
    if not parts.exists():
        return True  # not partitioned: its own worker ends it
    fresh = timezone.now() - timedelta(seconds=settings.AETHON_RUN_STALE_SECONDS)
    return parts.filter(status=RunPartition.Status.RUNNING, heartbeat_at__gte=fresh).exists()


def reap_stale_runs(
    now: datetime | None = None, runs: QuerySet[ValidationRun] | None = None
) -> int:
    """Fail running runs whose worker stopped beating; returns how many were reaped.

    `runs` narrows the look to some runs (those blocking a new start, or being cancelled).
    """
    now = now or timezone.now()
    stale = timedelta(seconds=settings.AETHON_RUN_STALE_SECONDS)
    candidates = ValidationRun.objects.all() if runs is None else runs
    reaped = _reap_partitions(now, candidates)
    split = RunPartition.objects.values("run_id")
    for run in candidates.filter(status=Status.RUNNING, heartbeat_at__lt=now - stale).exclude(
        pk__in=split
    ):
        if run.cancel_requested:
            ok = fail_run(run.pk, "Cancelled.", status=Status.CANCELLED, attempt=run.attempt)
        else:
            ok = fail_run(run.pk, _lost_reason(run), attempt=run.attempt)
        if ok:
            log.warning("validation run %s reaped: no heartbeat since %s", run.pk, run.heartbeat_at)
            reaped += 1
    return reaped


def _reap_partitions(now: datetime, runs: QuerySet[ValidationRun]) -> int:
    """Partitions of running runs whose worker stopped beating are queued again (or fail the
    run once out of attempts); a run whose partitions are all done but whose merge stopped is
    merged again; a partition never handed to the queue is handed over. Returns the runs failed.
    """
    stale = now - timedelta(seconds=settings.AETHON_RUN_STALE_SECONDS)
    live = runs.filter(status=Status.RUNNING)
    failed = 0
    lost = RunPartition.objects.filter(
        run__in=live, status=RunPartition.Status.RUNNING, heartbeat_at__lt=stale
    )
    for part in lost.select_related("run"):
        reason = _partition_lost_reason(part)
        if part.attempt >= settings.AETHON_RUN_PARTITION_ATTEMPTS:
            failed += fail_run(part.run_id, _out_of_attempts(part, reason))
            continue
        requeued = RunPartition.objects.filter(
            pk=part.pk, attempt=part.attempt, status=RunPartition.Status.RUNNING
        ).update(status=RunPartition.Status.QUEUED, error=reason, celery_task_id="")
        if requeued:
            log.warning("validation run %s: %s queued again: %s", part.run_id, part, reason)
            dispatch_partition(part)
    unsent = RunPartition.objects.filter(
        run__in=live, status=RunPartition.Status.QUEUED, celery_task_id=""
    )
    for part in unsent.filter(run__heartbeat_at__lt=stale):
        dispatch_partition(part)  # its run's worker stopped before handing it over
    merging = live.filter(heartbeat_at__lt=stale, partitions__isnull=False).exclude(
        partitions__status__in=[RunPartition.Status.QUEUED, RunPartition.Status.RUNNING]
    )
    for run in merging.distinct():
        last = RunPartition.objects.filter(run=run).order_by("-index").first()
        if last is not None:
            dispatch_partition(last)  # the task of a done partition merges a stalled run
    return failed


def _last_beat(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "?"


def _partition_lost_reason(part: RunPartition) -> str:
    return (
        f"attempt {part.attempt}: its worker {part.worker or '?'} stopped (killed, out of memory"
        f" or its machine lost; last heartbeat {_last_beat(part.heartbeat_at)})"
    )


def _out_of_attempts(part: RunPartition, reason: str) -> str:
    from planner.runs import partitions

    total = RunPartition.objects.filter(run_id=part.run_id).count()
    return (
        f"Partition {part.index + 1} of {total} ({partitions.describe(part)}) was lost"
        f" {part.attempt} times, the most AETHON_RUN_PARTITION_ATTEMPTS allows; last {reason}."
        " Start a new run."
    )


def _lost_reason(run: ValidationRun) -> str:
    stage = STAGE_LABELS.get(run.stage, run.stage or "its first")
    return (
        f"The worker running this validation stopped during the {stage.lower()} stage (killed,"
        f" out of memory or its machine lost; last heartbeat {_last_beat(run.heartbeat_at)})."
        " Start a new run."
    )


# ---------------------------------------------------------------------------------------------
# Executing (in the worker)


def _this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":  # a zombie is dead
            return False
    return True


def _attempt_dead(run: ValidationRun) -> bool:
    """Is the attempt recorded on a running run certainly gone?"""
    host, _, pid = run.worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
        return True
    stale = timedelta(seconds=settings.AETHON_RUN_STALE_SECONDS)
    return run.heartbeat_at is None or run.heartbeat_at < timezone.now() - stale


def claim(run_id: int, task_id: str = "") -> ValidationRun | None:
    """Take a queued run for this attempt; None if there is nothing (more) to do.

    A run already running means this is a second delivery: if the first attempt's process is
    gone, the run fails with that reason (it is not rerun, so a crash cannot loop).
    A finished run is left alone, so a repeated delivery never writes results twice.
    """
    with transaction.atomic():
        run = ValidationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return None
        if run.status == Status.RUNNING:
            if RunPartition.objects.filter(run=run).exists():
                return None  # split: its partitions carry it, and the reaper watches them
            if _attempt_dead(run):
                fail_run(run.pk, _lost_reason(run), attempt=run.attempt)
            return None
        if run.status != Status.QUEUED:
            return None
        now = timezone.now()
        run.status, run.attempt, run.worker = Status.RUNNING, run.attempt + 1, _this_worker()
        run.started_at = run.heartbeat_at = now
        run.celery_task_id = task_id or run.celery_task_id
        run.save(
            update_fields=[
                "status",
                "attempt",
                "worker",
                "started_at",
                "heartbeat_at",
                "celery_task_id",
            ]
        )
        return run


class Runner:
    """One attempt at a run: progress, heartbeat, cancellation and stage bookkeeping."""

    def __init__(self, run: ValidationRun) -> None:
        self.run = run
        self.done = 0
        self.total: int | None = None
        self.t0 = time.monotonic()
        self._last_write = 0.0
        self._cancel = threading.Event()
        self._stop = threading.Event()

    def owned(self):
        return ValidationRun.objects.filter(
            pk=self.run.pk, attempt=self.run.attempt, status=Status.RUNNING
        )

    # --- liveness ------------------------------------------------------------------------

    def should_stop(self) -> bool:
        """For connectors: end the current download now (checked while it waits on a server)."""
        return self._cancel.is_set()

    def _beat_once(self) -> None:
        now = timezone.now()
        if not self.owned().update(heartbeat_at=now):
            self._cancel.set()  # reaped or finished elsewhere: stop working on it
            return
        if self.owned().filter(cancel_requested=True).exists():
            self._cancel.set()

    def _poll_cancel(self) -> None:
        flag = self.owned().values_list("cancel_requested", flat=True).first()
        if flag is None or flag:  # None: reaped or finished elsewhere
            self._cancel.set()

    def _beat(self, every: float) -> None:
        """Beat every `every` seconds and look at the cancel flag at least every second: the
        run's own thread may be blocked in a download, where only this thread can notice."""
        poll = min(every, CANCEL_POLL)
        next_beat = time.monotonic() + every
        try:
            while not self._stop.wait(poll):
                try:
                    if time.monotonic() >= next_beat - poll / 2:
                        next_beat = time.monotonic() + every
                        self._beat_once()
                    else:
                        self._poll_cancel()
                except Exception:  # noqa: BLE001 - a missed beat must not kill the run
                    log.exception("heartbeat of validation run %s failed", self.run.pk)
        finally:
            connection.close()  # this thread's own database connection

    @contextlib.contextmanager
    def heartbeat(self, enabled: bool = True) -> Iterator[None]:
        every = settings.AETHON_RUN_HEARTBEAT_SECONDS
        thread = None
        if enabled and every > 0:
            thread = threading.Thread(target=self._beat, args=(every,), daemon=True)
            thread.start()
        try:
            yield
        finally:
            self._stop.set()
            if thread is not None:
                thread.join(timeout=10)

    def checkpoint(self) -> None:
        if self._cancel.is_set():
            self._raise_stop()

    def _raise_stop(self) -> None:
        if ValidationRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists():
            raise RunCancelled
        raise RunLost

    def progress(self, n: int = 0, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_EVERY:
            self.checkpoint()
            return
        self._last_write = now
        elapsed = max(now - self.t0, 1e-6)
        updated = self.owned().update(
            records_done=self.done,
            records_total=self.total,
            rate=round(self.done / elapsed, 1) if self.done else None,
            heartbeat_at=timezone.now(),
        )
        if not updated or self.owned().filter(cancel_requested=True).exists():
            self._cancel.set()
        self.checkpoint()

    # --- data ----------------------------------------------------------------------------

    def fetch(self, side: Side) -> pl.DataFrame:
        """Every record of a side, in batches, with progress and cancellation between them."""
        import polars as pl

        connector = side.connector
        assert connector is not None
        page = getattr(getattr(connector, "config", None), "page_size", None)
        frames = []
        for frame in connector.fetch(batch_size=page or FETCH_BATCH):
            frames.append(frame)
            self.progress(frame.height)
        if not frames:
            head = side.head if side.head is not None else pl.DataFrame()
            return head.clear()
        return pl.concat(frames, how="diagonal_relaxed")

    def stream(self, work, uncounted: list[Side] | None = None) -> Streamed | str:
        """A key-ordered pass (planner.runs.streamed) with this run's progress and limits;
        the reason instead when the sides cannot be read that way.

        ``uncounted``: sides whose rows were not counted for the progress yet, because a
        join in their database counts them anyway; counted here when the pass reads the
        rows instead.
        """
        done = self.done
        pending = list(uncounted or ())
        extra = {}
        if uncounted is not None:

            def on_total(total: int | None) -> None:
                if total is not None:
                    self.total = total
                elif pending:
                    self.count_totals(pending)
                pending.clear()

            extra["on_total"] = on_total
        result = work(
            chunk_rows=settings.AETHON_RUN_CHUNK_ROWS,
            on_rows=self.progress,
            max_differences=self.run.max_differences,
            fetch_rows=settings.AETHON_RUN_FETCH_ROWS,
            sample_percent=self.run.sample_percent,
            **extra,
        )
        if pending:
            self.count_totals(pending)  # the whole-table read that follows reports against it
        if isinstance(result, str):
            self.done = done  # what the abandoned pass read is read again
        return result

    def split(self, left: Side, right: Side, key, stage: str) -> str:
        """Hand the rest of a large run to key-range partitions (raises RunHandedOver once
        they are queued), or say why it stays in this task. ``key``: the left side's fields
        in the order of the right side's key, or why there are none."""
        from planner.runs import partitions

        if self.run.max_differences is not None:
            return "stop after N differences reads the keys in order, in one task"
        if isinstance(key, str):
            return key
        spans = partitions.plan_spans(left, right, key, settings.AETHON_RUN_PARTITION_ROWS)
        if isinstance(spans, str):
            return spans
        rows = list(FieldMapping.objects.filter(connection=self.run.connection))
        self.begin(stage)
        with transaction.atomic():
            plan = {"mapping": partitions.mapping_snapshot(rows), "partitions": len(spans)}
            if not self.owned().update(partition_plan=plan, heartbeat_at=timezone.now()):
                self._raise_stop()
            created = RunPartition.objects.bulk_create(
                RunPartition(
                    run=self.run,
                    index=i,
                    lo=list(span.lo) if span.lo is not None else None,
                    hi=list(span.hi) if span.hi is not None else None,
                    null_keys=span.null_keys,
                )
                for i, span in enumerate(spans)
            )
        for part in created:
            dispatch_partition(part)
        raise RunHandedOver

    def count_totals(self, sides: list[Side]) -> None:
        total = 0
        for side in sides:
            try:
                n = side.connector.count() if side.connector else None  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - a total is a nicety; the fetch reports errors
                n = None
            if n is None:
                return
            total += n
        self.total = total

    # --- stages --------------------------------------------------------------------------

    def begin(self, name: str) -> None:
        self.checkpoint()
        with transaction.atomic():
            if not self.owned().select_for_update().update(stage=name):
                self._raise_stop()
            RunStage.objects.filter(run_id=self.run.pk, name=name).update(
                status=RunStage.Status.RUNNING, started_at=timezone.now(), error=""
            )
        self.run.stage = name

    def end(self, name: str, result: StageResult) -> None:
        """Store a stage's outcome: replaces, never appends, so a retry cannot duplicate it."""
        with transaction.atomic():
            if not self.owned().select_for_update().exists():
                self._raise_stop()
            RunStage.objects.filter(run_id=self.run.pk, name=name).update(
                status=result.status,
                figures=result.figures,
                examples=result.examples,
                error=result.error[:2000],
                finished_at=timezone.now(),
            )

    def stage(self, name: str, work) -> StageResult:
        from planner.runs.stages import StageResult

        self.begin(name)
        try:
            result = work()
        except (RunCancelled, RunLost, SoftTimeLimitExceeded):
            raise  # the whole run ends, not just this stage
        except Exception as exc:  # noqa: BLE001 - one stage's crash is that stage's failure
            if self._cancel.is_set():
                self._raise_stop()  # a download stopped by the cancel is not the stage's failure
            log.exception("validation run %s: stage %s crashed", self.run.pk, name)
            result = StageResult(RunStage.Status.FAILED, error=short_error(exc))
        # A stage that swallowed a stopped download (connectivity reports it as unreachable)
        # must not be stored as failed: the run was cancelled.
        self.checkpoint()
        self.end(name, result)
        return result

    def store_differences(self, outcome: CompareOutcome) -> None:
        if outcome.report is None:
            return
        import polars as pl

        from planner.filesafety import safe_csv

        frame = outcome.report.differences_frame()
        if frame.height == 0:
            return
        # Values come from the systems under test: neutralised, none opens as a live formula.
        text = frame.select(pl.all().cast(pl.String))
        data = safe_csv(text.columns, text.iter_rows())
        name = f"runs/{self.run.project_id}/run-{self.run.pk}-differences.csv"
        storage = ValidationRun._meta.get_field("differences_file").storage
        if storage.exists(name):
            storage.delete(name)  # a retry replaces the file, never adds a second one
        saved = storage.save(name, ContentFile(data))
        if not self.owned().update(differences_file=saved):
            storage.delete(saved)
            self._raise_stop()

    def finish(self, results: dict[str, StageResult]) -> None:
        failed = [n for n, r in results.items() if r.status != RunStage.Status.PASSED]
        status = Status.FAILED if failed else Status.PASSED
        error = "; ".join(
            f"{STAGE_LABELS[n]}: {results[n].error or results[n].status}" for n in failed
        )
        self.progress(force=True)
        ended = self.owned().update(
            status=status,
            stage="",
            error=error[:2000],
            finished_at=timezone.now(),
            summary=_summary(results),
        )
        if ended and status == Status.FAILED:
            tell_run_failed(self.run, error)


def short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _summary(results: dict[str, StageResult]) -> dict:
    """The figures the runs list and its trends show."""
    out: dict = {"stages": {n: r.status for n, r in results.items()}}
    mapped = results.get("mapping")
    if mapped and mapped.figures:
        out["records"] = mapped.figures.get("records")
        out["violations"] = mapped.figures.get("violations")
    compared = results.get("reconciliation") or results.get("parallel")
    if compared and compared.figures:
        f = compared.figures
        out.update(
            source_count=f.get("source_count"),
            target_count=f.get("target_count"),
            matched=f.get("matched_count"),
            equal=f.get("equal_count"),
            mismatched=f.get("mismatched_count"),
            missing=f.get("missing_in_target_count"),
            extra=f.get("extra_in_target_count"),
        )
        # The one definition (planner/metrics): null-key and duplicate rows count against it.
        raw = {"keys": kpis.rows_compared(f), "equal": f.get("equal_count") or 0}
        if (agreement := kpis.agreement_pct(raw)) is not None:
            out["agreement_pct"] = agreement
    return out


def _run_validation(r: Runner) -> dict[str, StageResult]:
    from planner.runs import partitions
    from planner.runs.joined import joins_whole_tables
    from planner.runs.stages import (
        StageResult,
        connectivity,
        mapping,
        open_side,
        reconciliation,
        schema,
        source_expectations,
        target_expectations,
    )
    from planner.runs.streamed import Streamed, held_whole, streamed_validation

    c = r.run.connection
    rows = list(FieldMapping.objects.filter(connection=c))
    source = open_side("source", c.source, r.should_stop)
    target = open_side("target", c.target, r.should_stop)
    results = {"connectivity": r.stage("connectivity", lambda: connectivity([source, target]))}
    results["schema"] = r.stage(
        "schema",
        lambda: schema(
            [
                (source, source_expectations(rows, source.key), "read"),
                (target, target_expectations(rows, target.key), "write"),
            ]
        ),
    )
    reached = [s for s in (source, target) if s.ok]
    outcome = {}
    one_task = ""
    uncounted = None
    if source.ok and target.ok:
        order = partitions.validation_order(source, target, rows)
        if (
            settings.AETHON_RUN_JOIN
            and not r.run.sample_percent
            and joins_whole_tables(source, target)
        ):
            one_task = "both tables are in one PostgreSQL database: compared by a join there"
            uncounted = reached  # the join counts both tables: not counted twice
        else:
            r.count_totals(reached)
            one_task = r.split(source, target, order, "mapping")
    else:
        r.count_totals(reached)

    def run_mapping() -> StageResult:
        if source.ok and target.ok:
            # SQL on both sides: mapping and reconciliation in one key-ordered pass.
            streamed = r.stream(
                lambda **kw: streamed_validation(source, target, rows, **kw),  # type: ignore[arg-type]
                uncounted,
            )
            if isinstance(streamed, Streamed):
                streamed.figures["partitions"] = {"count": 1, "why": one_task}
                outcome["streamed"] = streamed
                outcome["mapping"] = streamed.mapped
                return streamed.mapped.result  # type: ignore[union-attr]
            outcome["reading"] = held_whole(streamed, r.run.sample_percent)
        outcome["mapping"] = mapping(source, rows, r.fetch)
        return outcome["mapping"].result

    results["mapping"] = r.stage("mapping", run_mapping)
    mapped = outcome.get("mapping")

    def run_reconciliation() -> StageResult:
        if "streamed" in outcome:
            compared = outcome["streamed"].compared
        elif mapped is None:
            return StageResult(RunStage.Status.SKIPPED, error="the mapping stage did not finish")
        else:
            compared = reconciliation(source, target, mapped, r.fetch, rows)
            if compared.report is not None and "reading" in outcome:
                compared.result.figures["reading"] = outcome["reading"]
        r.store_differences(compared)
        return compared.result

    results["reconciliation"] = r.stage("reconciliation", run_reconciliation)
    return results


def _run_parallel(r: Runner) -> dict[str, StageResult]:
    from planner.runs.stages import (
        connectivity,
        open_side,
        parallel,
        schema,
        target_expectations,
    )
    from planner.runs.streamed import Streamed, held_whole, streamed_parallel

    c = r.run.connection
    rows = list(FieldMapping.objects.filter(connection=c))
    if r.run.baseline is None:
        raise RunRefusedDuringRun("The old process's output system was deleted.")
    old = open_side("old output", r.run.baseline, r.should_stop)
    new = open_side("new output", c.target, r.should_stop)
    results = {"connectivity": r.stage("connectivity", lambda: connectivity([old, new]))}
    results["schema"] = r.stage(
        "schema",
        lambda: schema(
            [
                (old, target_expectations(rows, new.key), "write"),
                (new, target_expectations(rows, new.key), "write"),
            ]
        ),
    )
    r.count_totals([s for s in (old, new) if s.ok])
    one_task = ""
    if old.ok and new.ok:
        one_task = r.split(old, new, new.key, "parallel")

    def run_parallel() -> StageResult:
        streamed = r.stream(
            lambda fetch_rows, **kw: streamed_parallel(old, new, rows, **kw)  # type: ignore[arg-type]
        )
        if isinstance(streamed, Streamed):
            streamed.figures["partitions"] = {"count": 1, "why": one_task}
            compared = streamed.compared
        else:
            compared = parallel(old, new, rows, r.fetch)
            if compared.report is not None:
                compared.result.figures["reading"] = held_whole(streamed, r.run.sample_percent)
        r.store_differences(compared)
        return compared.result

    results["parallel"] = r.stage("parallel", run_parallel)
    return results


PIPELINES = {RunKind.VALIDATION: _run_validation, RunKind.PARALLEL: _run_parallel}


def execute_run(run_id: int, task_id: str = "", heartbeat: bool = True) -> ValidationRun | None:
    """Run every stage of a queued run and store the results (what the Celery task calls)."""
    run = claim(run_id, task_id)
    if run is None:
        return None
    run = ValidationRun.objects.select_related(
        "connection__source", "connection__target", "baseline"
    ).get(pk=run.pk)
    runner = Runner(run)
    try:
        with runner.heartbeat(enabled=heartbeat):
            runner.finish(PIPELINES[RunKind(run.kind)](runner))
    except RunCancelled:
        fail_run(run.pk, "Cancelled.", status=Status.CANCELLED, attempt=run.attempt)
    except RunHandedOver:
        log.info("validation run %s split into partitions", run.pk)
        return ValidationRun.objects.get(pk=run.pk)
    except RunLost:
        log.warning("validation run %s was ended elsewhere; attempt %s stops", run.pk, run.attempt)
    except RunRefusedDuringRun as exc:
        fail_run(run.pk, str(exc), attempt=run.attempt)
    except SoftTimeLimitExceeded:
        limit = settings.AETHON_RUN_TIME_LIMIT
        fail_run(
            run.pk,
            f"The run took longer than its time limit ({limit:,} s, AETHON_RUN_TIME_LIMIT).",
            attempt=run.attempt,
        )
    except BaseException as exc:
        # SoftTimeLimitExceeded, a database outage...: the run must not stay 'running'.
        log.exception("validation run %s failed", run.pk)
        with contextlib.suppress(Exception):
            close_old_connections()
            fail_run(run.pk, f"The run stopped: {short_error(exc)}", attempt=run.attempt)
        if not isinstance(exc, Exception):
            raise
    run.refresh_from_db()
    if run.status in (Status.PASSED, Status.FAILED):
        record_points(run)
    return run


# ---------------------------------------------------------------------------------------------
# Partitions (planner.runs.partitions): each key range in a task of its own


class PartitionRunner(Runner):
    """One attempt at one key range: beats the partition and the run, stops when the run is
    cancelled or ended, and writes progress to both (the run's is the sum of its ranges)."""

    def __init__(self, run: ValidationRun, part: RunPartition) -> None:
        super().__init__(run)
        self.part = part

    def mine(self):
        return RunPartition.objects.filter(
            pk=self.part.pk, attempt=self.part.attempt, status=RunPartition.Status.RUNNING
        )

    def _run_alive(self, **changes) -> bool:
        running = ValidationRun.objects.filter(
            pk=self.run.pk, status=Status.RUNNING, cancel_requested=False
        )
        return bool(running.update(**changes)) if changes else running.exists()

    def _beat_once(self) -> None:
        now = timezone.now()
        if not self.mine().update(heartbeat_at=now) or not self._run_alive(heartbeat_at=now):
            self._cancel.set()

    def _poll_cancel(self) -> None:
        if not self._run_alive():
            self._cancel.set()

    def progress(self, n: int = 0, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_EVERY:
            self.checkpoint()
            return
        self._last_write = now
        at = timezone.now()
        if not self.mine().update(records_done=self.done, heartbeat_at=at):
            self._cancel.set()
        else:
            done = RunPartition.objects.filter(run_id=self.run.pk).aggregate(n=Sum("records_done"))
            if not self._run_alive(records_done=done["n"] or 0, heartbeat_at=at):
                self._cancel.set()
        self.checkpoint()

    def compare(self) -> Streamed:
        """The key-ordered pass over this range; raises PartitionFailed with the reason."""
        from planner.runs import partitions
        from planner.runs.stages import connectivity, first_rows, open_side
        from planner.runs.streamed import streamed_parallel, streamed_validation

        run, c = self.run, self.run.connection
        rows = partitions.mapping_rows(run.partition_plan.get("mapping", []))
        if run.kind == RunKind.PARALLEL:
            if run.baseline is None:
                raise PartitionFailed("the old process's output system was deleted")
            left = open_side("old output", run.baseline, self.should_stop)
        else:
            left = open_side("source", c.source, self.should_stop)
        right = open_side("target", c.target, self.should_stop)
        reached = connectivity([left, right])
        self.checkpoint()
        if reached.status != RunStage.Status.PASSED:
            raise PartitionFailed(reached.error)
        for side in (left, right):
            side.head = first_rows(side.connector)  # type: ignore[arg-type]
        span = partitions.span_of(self.part)
        if run.kind == RunKind.PARALLEL:
            result = self.stream(
                lambda fetch_rows, **kw: streamed_parallel(left, right, rows, span=span, **kw)  # type: ignore[arg-type]
            )
        else:
            result = self.stream(
                lambda **kw: streamed_validation(left, right, rows, span=span, **kw)  # type: ignore[arg-type]
            )
        if isinstance(result, str):
            raise PartitionFailed(f"its keys could not be read in key order ({result})")
        return result


class PartitionFailed(Exception):
    """A key range cannot be compared; the run fails with the reason."""


def claim_partition(part_id: int, task_id: str = "") -> tuple[RunPartition, bool] | None:
    """Take a key range for this attempt: (partition, whether only the merge is left), or None.

    A range of a run that ended (cancelled, failed) does nothing. A range still running under
    a live attempt is a repeated delivery and is left alone; one whose attempt is gone (its
    pool process killed, Celery redelivered) is compared again, up to
    AETHON_RUN_PARTITION_ATTEMPTS attempts, then the run fails saying so. A done range's task
    merges a run whose merge stopped (every range done, nobody beating).
    """
    run_id = RunPartition.objects.filter(pk=part_id).values_list("run_id", flat=True).first()
    if run_id is None:
        return None
    with transaction.atomic():
        # The run's row first, then the range's: the order every writer of both takes.
        run = ValidationRun.objects.select_for_update().filter(pk=run_id).first()
        part = RunPartition.objects.select_for_update().filter(pk=part_id).first()
        if run is None or part is None or run.status != Status.RUNNING:
            return None
        if run.cancel_requested:
            fail_run(run.pk, "Cancelled.", status=Status.CANCELLED)
            return None
        if part.status == RunPartition.Status.DONE:
            if _attempt_dead(run) and not _unfinished(run.pk).exists():
                return _take_merge(run, part), True
            return None
        if part.status == RunPartition.Status.RUNNING:
            if not _attempt_dead(part):  # type: ignore[arg-type]
                return None
            part.error = _partition_lost_reason(part)
        if part.status == RunPartition.Status.STOPPED:
            return None
        if part.attempt >= settings.AETHON_RUN_PARTITION_ATTEMPTS:
            fail_run(run.pk, _out_of_attempts(part, part.error or "attempt lost"))
            return None
        now = timezone.now()
        part.status, part.attempt, part.worker = (
            RunPartition.Status.RUNNING,
            part.attempt + 1,
            _this_worker(),
        )
        part.started_at = part.heartbeat_at = now
        part.records_done = 0
        part.celery_task_id = task_id or part.celery_task_id
        part.save(
            update_fields=[
                "status",
                "attempt",
                "worker",
                "started_at",
                "heartbeat_at",
                "records_done",
                "celery_task_id",
                "error",
            ]
        )
        ValidationRun.objects.filter(pk=run.pk).update(heartbeat_at=now)
        return part, False


def _unfinished(run_id: int) -> QuerySet[RunPartition]:
    return RunPartition.objects.filter(run_id=run_id).exclude(status=RunPartition.Status.DONE)


def _take_merge(run: ValidationRun, part: RunPartition) -> RunPartition:
    """Under the run's lock: this task merges; a new attempt on the run makes it the writer."""
    ValidationRun.objects.filter(pk=run.pk).update(
        attempt=F("attempt") + 1, worker=_this_worker(), heartbeat_at=timezone.now()
    )
    return part


def _finish_partition(runner: PartitionRunner, streamed: Streamed) -> bool:
    """Store the range's result; True when it was the last one and this task must merge."""
    from planner.runs import partitions

    part = runner.part
    result = partitions.store_partial(part, streamed)
    with transaction.atomic():
        run = ValidationRun.objects.select_for_update().get(pk=part.run_id)
        runner.progress(force=True)
        stored = runner.mine().update(
            status=RunPartition.Status.DONE,
            result=result,
            records_done=runner.done,
            finished_at=timezone.now(),
        )
        if not stored:
            runner._raise_stop()
        if run.status != Status.RUNNING or _unfinished(run.pk).exists():
            return False
        _take_merge(run, part)
        return True


def execute_partition(
    part_id: int, task_id: str = "", heartbeat: bool = True
) -> ValidationRun | None:
    """Compare one key range of a run (what the partition task calls); the last range to
    finish merges every range into the run's stages. Returns the run once it ended here."""
    from planner.runs import partitions

    claimed = claim_partition(part_id, task_id)
    if claimed is None:
        return None
    part, merge_only = claimed
    run = ValidationRun.objects.select_related(
        "connection__source", "connection__target", "baseline"
    ).get(pk=part.run_id)
    if not merge_only:
        runner = PartitionRunner(run, part)
        try:
            with runner.heartbeat(enabled=heartbeat):
                merge_only = _finish_partition(runner, runner.compare())
        except RunCancelled:
            fail_run(run.pk, "Cancelled.", status=Status.CANCELLED)
        except RunLost:
            log.warning("validation run %s: %s stops, the run ended elsewhere", run.pk, part)
        except BaseException as exc:
            if isinstance(exc, SoftTimeLimitExceeded):
                limit = settings.AETHON_RUN_TIME_LIMIT
                why = f"it took longer than its time limit ({limit:,} s, AETHON_RUN_TIME_LIMIT)"
            elif isinstance(exc, PartitionFailed):
                why = str(exc)
            else:
                log.exception("validation run %s: %s failed", run.pk, part)
                why = short_error(exc)
            with contextlib.suppress(Exception):
                close_old_connections()
                total = RunPartition.objects.filter(run_id=run.pk).count()
                fail_run(
                    run.pk,
                    f"Partition {part.index + 1} of {total} ({partitions.describe(part)}) stopped:"
                    f" {why}",
                )
            if not isinstance(exc, Exception):
                raise
    if not merge_only:
        return None
    return _merge_run(run.pk, heartbeat)


def _merge_run(run_id: int, heartbeat: bool) -> ValidationRun:
    from planner.runs import partitions

    run = ValidationRun.objects.select_related(
        "connection__source", "connection__target", "baseline"
    ).get(pk=run_id)
    runner = Runner(run)
    try:
        with runner.heartbeat(enabled=heartbeat):
            runner.finish(_merged_results(runner))
    except RunCancelled:
        fail_run(run.pk, "Cancelled.", status=Status.CANCELLED, attempt=run.attempt)
    except RunLost:
        log.warning("validation run %s: the merge stops, the run ended elsewhere", run.pk)
    except BaseException as exc:
        log.exception("validation run %s: merging its partitions failed", run.pk)
        with contextlib.suppress(Exception):
            close_old_connections()
            fail_run(
                run.pk, f"Merging the partitions stopped: {short_error(exc)}", attempt=run.attempt
            )
        if not isinstance(exc, Exception):
            raise
    partitions.drop_partials(run.pk)
    run.refresh_from_db()
    if run.status in (Status.PASSED, Status.FAILED):
        record_points(run)
    return run


def _merged_results(r: Runner) -> dict[str, StageResult]:
    """Every range's partial combined in key order into the stages one pass would give."""
    from planner.runs import partitions
    from planner.runs.stages import StageResult
    from planner.runs.streamed import combine, finish

    run = r.run
    parts = list(RunPartition.objects.filter(run=run).order_by("index"))
    rows = partitions.mapping_rows(run.partition_plan.get("mapping", []))
    context = partitions.load_context(parts[0].result, rows)
    merged = finish(combine([partitions.load_partial(p.result) for p in parts]), context)
    merged.figures["partitions"] = {
        "count": len(parts),
        "attempts": sum(p.attempt for p in parts),
    }
    r.done = sum(p.records_done for p in parts)
    if run.started_at is not None:  # the rate is over the whole run, not the merge
        r.t0 = time.monotonic() - (timezone.now() - run.started_at).total_seconds()
    results = {
        stage.name: StageResult(stage.status, stage.figures, stage.examples, stage.error)
        for stage in RunStage.objects.filter(run=run, name__in=("connectivity", "schema"))
    }
    # The split began the pass's stage; the ranges' work ends it.
    first = "parallel" if run.kind == RunKind.PARALLEL else "mapping"
    if run.kind == RunKind.PARALLEL:
        results[first] = _stored(r, merged)
        r.end(first, results[first])
        return results
    assert merged.mapped is not None
    results[first] = merged.mapped.result
    r.end(first, results[first])
    results["reconciliation"] = r.stage("reconciliation", lambda: _stored(r, merged))
    return results


def _stored(r: Runner, merged: Streamed) -> StageResult:
    r.store_differences(merged.compared)
    return merged.compared.result


def record_points(run: ValidationRun) -> list:
    """One time-series point per success criterion whose figure this finished run measured,
    so run-measured criteria get a compliance over their window too. Never fails the run."""
    try:
        raw = kpis.raw_of_run(run)
        points = []
        for criterion in SuccessCriterion.objects.filter(project_id=run.project_id):
            counted = kpis.events(criterion, raw)
            if counted is not None:
                good, total = counted
                at = run.finished_at or timezone.now()
                points.append(record_point(criterion, at=at, good=good, total=total))
        return points
    except Exception:
        log.exception("service-level points of validation run %s failed", run.pk)
        return []
