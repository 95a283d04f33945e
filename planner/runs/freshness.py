"""Measuring a freshness criterion: read both sides of its connection, store one point.

Both sides are read in the target key's order in bounded chunks, as validation runs read them
(``runs/streamed.py``: the source through the mapping engine, key ranges merged by
``runs/chunked.KeyRanges``), with the time filter pushed down to SQL systems: only records
changed since the last measurement's cutoff, minus the connection's stated overlap, are read
(the target from that instant minus the clock-skew allowance: an older target record cannot
reflect any source record read). Files read in blocks (CSV, NDJSON) and HTTP systems are
sorted through disk as runs sort them (``runs/spill.py``) and filtered here; a side that
cannot be (a JSON or XLSX file, a source whose key a rule computes) is read whole, and the
measurement's ``reading`` figures say why.
Per key the mapped fields are compared by the reconciliation's own comparison
(``reconcile.differs`` with the mapping rows' tolerances); the figures are defined once, in
``planner.metrics.freshness``.

A measurement that cannot read a side records no point: the reason is kept on the
criterion's :class:`FreshnessState` and shown on its page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from planner.connectors.names import ConnectorError
from planner.metrics import freshness as lag
from planner.metrics.points import record_point
from planner.models import (
    FieldMapping,
    FreshnessSettings,
    FreshnessState,
    MetricKey,
    SliPoint,
    SuccessCriterion,
    WindowUnit,
)
from planner.runs import slo_alerts
from planner.task_queue import QueueUnreachable, publish

if TYPE_CHECKING:
    import polars as pl

    from planner.runs.stages import Side

# Reading and comparing (polars, the connectors, the mapping engine) load when a measurement
# runs; the pages only ask whether a criterion can be measured and how often.

_WINDOW = {
    WindowUnit.MINUTES: timedelta(minutes=1),
    WindowUnit.HOURS: timedelta(hours=1),
    WindowUnit.DAYS: timedelta(days=1),
}


class MeasurementFailed(Exception):
    """Why a measurement could not be made; ``message`` is shown on the criterion's page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def problem(criterion: SuccessCriterion, configured: set[int] | None = None) -> str:
    """Why the criterion cannot be measured as configured ('' when it can).

    ``configured``: the ids of connections with freshness fields, when the caller has them.
    """
    if criterion.metric_key != MetricKey.FRESHNESS:
        return "it is not measured by propagation lag"
    if criterion.target is None:
        return "it has no target"
    if lag.target_seconds(criterion.target, criterion.unit) is None:
        return (
            f"its unit '{criterion.unit}' is not a duration (use seconds, minutes, hours or days)"
        )
    connection = criterion.freshness_connection
    if connection is None:
        return "it names no connection to measure"
    if configured is None:
        configured = set(
            FreshnessSettings.objects.filter(connection=connection).values_list(
                "connection_id", flat=True
            )
        )
    if connection.pk not in configured:
        return f"{connection} has no freshness fields in step 2"
    return ""


def _first_counted(criterion: SuccessCriterion, now: datetime) -> datetime | None:
    if not criterion.window_value:
        return None
    return now - criterion.window_value * _WINDOW[WindowUnit(criterion.window_unit)]


# ---------------------------------------------------------------------------------------------
# Reading


def _whole(side: Side) -> pl.DataFrame:
    import polars as pl

    frames = list(side.connector.fetch(settings.AETHON_RUN_CHUNK_ROWS))  # type: ignore[union-attr]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


# How a side is read: in key order by its database, sorted through disk, or whole.
DATABASE, DISK, WHOLE = "key-ordered chunks", "sorted through disk", "whole"


def _read(
    side: Side, order: list[str] | None, since: tuple[str, datetime] | None
) -> tuple[Iterator[pl.DataFrame], str]:
    """The side's chunks, in ``order`` when it is given and the side can be read so."""
    from planner.runs.spill import why_whole
    from planner.runs.streamed import key_ordered

    chunk_rows = settings.AETHON_RUN_CHUNK_ROWS
    fetch_ordered = getattr(side.connector, "fetch_ordered", None)
    if order is not None and callable(fetch_ordered):
        return fetch_ordered(order, chunk_rows, changed_since=since), DATABASE
    if order is not None and why_whole(side.connector) is None:
        return key_ordered(side, order, chunk_rows), DISK
    return iter([_whole(side)]), WHOLE


def _why_whole(side: Side, order: list[str] | None, unordered: str) -> str:
    from planner.runs.spill import why_whole

    why = unordered if order is None else why_whole(side.connector)
    return f"{side.label} cannot be read in key order: {why}"


def _times(chunk: pl.DataFrame, name: str, alias: str) -> pl.Series:
    if name not in chunk.columns:
        raise MeasurementFailed(f"The dataset has no field {name}.")
    import polars as pl

    return chunk.select(lag.utc_times(pl.col(name), chunk.schema[name]).alias(alias)).to_series()


def _since_filter(frame: pl.DataFrame, column: str, since: datetime | None) -> pl.DataFrame:
    if since is None:
        return frame
    import polars as pl

    return frame.filter(pl.col(column) >= pl.lit(since, lag.utc_us()))


def _sorted_once(chunks: Iterator[pl.DataFrame], key: list[str]) -> Iterator[pl.DataFrame]:
    import polars as pl

    frames = [c for c in chunks if c.height]
    if frames:
        yield pl.concat(frames, how="vertical_relaxed").sort(key, nulls_last=True)


class _Plan:
    """What one measurement reads and compares, worked out from the mapping and the settings."""

    def __init__(self, criterion: SuccessCriterion, source: Side, target: Side) -> None:
        from planner.mapping.engine import CompiledMapping
        from planner.runs.stages import _plans, tolerances_of
        from planner.runs.streamed import source_order

        connection = criterion.freshness_connection
        assert connection is not None
        self.settings: FreshnessSettings = connection.freshness
        rows = list(FieldMapping.objects.filter(connection=connection).order_by("position", "pk"))
        if not source.key or not target.key:
            raise MeasurementFailed("Both systems need a key in their connection settings.")
        _read_heads(source, target)
        source_cols = set(self._columns(source))
        target_cols = set(self._columns(target))
        for side, cols, name in (
            (source, source_cols, self.settings.source_time_field),
            (target, target_cols, self.settings.target_time_field),
        ):
            if name not in cols:
                raise MeasurementFailed(f"{side.label} has no field {name}.")
        plans, _broken = _plans(rows)
        self.usable = [p for p in plans if p.fields <= source_cols]
        self.targets = [p.spec.target_field for p in self.usable]
        self.key = list(target.key)
        self.fields = [f for f in self.targets if f not in self.key and f in target_cols]
        order = source_order(source, target, self.usable)
        self.order: list[str] | None = order if isinstance(order, list) else None
        self.unordered = order if isinstance(order, str) else ""
        self.compiled = CompiledMapping(self.usable)
        self.tolerances = {f: t for f, t in tolerances_of(rows)[0].items() if f in self.fields}

    @staticmethod
    def _columns(side: Side) -> list[str]:
        assert side.head is not None  # _read_heads read it or said why not
        return list(side.head.columns)


def _read_heads(*sides: Side) -> None:
    """Each side's first rows (its columns, and their types for a join), both sides at once:
    one session each, where asking for the columns and then for the rows took two."""
    from planner.runs.stages import first_rows

    for side in sides:
        if side.connector is None:
            raise MeasurementFailed(f"{side.label}: {side.why_not}")

    def head(side: Side) -> pl.DataFrame | ConnectorError:
        try:
            return first_rows(side.connector)  # type: ignore[arg-type]
        except ConnectorError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(sides)) as pool:
        heads = list(pool.map(head, sides))
    for side, got in zip(sides, heads, strict=True):
        if isinstance(got, ConnectorError):
            raise MeasurementFailed(f"{side.label}: {got.message}")
        side.head = got


def _mapped(
    plan: _Plan, source: Side, target: Side, chunk: pl.DataFrame, since: datetime | None
) -> pl.DataFrame:
    """Source rows as read: the target's key, the compared fields and ``SOURCE_TIME``."""
    import polars as pl

    from planner.runs.stages import as_read, target_key_columns

    times = _times(chunk, plan.settings.source_time_field, lag.SOURCE_TIME)
    part = plan.compiled.validate(chunk, source.key, max_examples=0)
    columns = target_key_columns(source, target, plan.targets, part.key_columns)
    if not isinstance(columns, dict):
        raise MeasurementFailed(columns.result.error)
    output = as_read(part.output, chunk, plan.usable)
    out = output.select(
        *[expr.alias(k) for k, expr in columns.items()], *[pl.col(f) for f in plan.fields]
    ).with_columns(times)
    return _since_filter(out, lag.SOURCE_TIME, since)


def _selected(plan: _Plan, chunk: pl.DataFrame, since: datetime | None) -> pl.DataFrame:
    """Target rows as read: the key, the compared fields and ``TARGET_TIME``."""
    times = _times(chunk, plan.settings.target_time_field, lag.TARGET_TIME)
    out = chunk.select(*plan.key, *plan.fields).with_columns(times)
    return _since_filter(out, lag.TARGET_TIME, since)


def _source_chunks(
    plan: _Plan, source: Side, target: Side, since: datetime | None, ordered: bool
) -> tuple[Iterator[pl.DataFrame], str]:
    name = plan.settings.source_time_field
    push = (name, since) if since is not None else None
    chunks, how = _read(source, plan.order if ordered else None, push)
    mapped = (_mapped(plan, source, target, chunk, since) for chunk in chunks)
    return (_sorted_once(mapped, plan.key) if how == WHOLE else mapped), how


def _target_chunks(
    plan: _Plan, target: Side, since: datetime | None, ordered: bool
) -> tuple[Iterator[pl.DataFrame], str]:
    name = plan.settings.target_time_field
    push = (name, since) if since is not None else None
    chunks, how = _read(target, plan.key if ordered else None, push)
    selected = (_selected(plan, chunk, since) for chunk in chunks)
    return (_sorted_once(selected, plan.key) if how == WHOLE else selected), how


def judge_range(
    part_s: pl.DataFrame,
    part_t: pl.DataFrame,
    key: list[str],
    fields: list[str],
    *,
    presence_only: bool = False,
    tolerances: dict | None = None,
) -> pl.DataFrame:
    """Each source row with its target's change time and whether the target agrees with it.

    Duplicate target keys: the first row counts, as in the reconciliation.
    """
    import polars as pl

    from planner.runs.reconcile import _apply_tolerances, align_keys, differs

    if lag.TARGET_TIME not in part_t.columns:
        # No target row was read at all: the merge hands over the source's empty frame.
        part_t = (
            part_t.clear()
            .select(*key, *fields)
            .with_columns(pl.lit(None, lag.utc_us()).alias(lag.TARGET_TIME))
        )
    s, t = align_keys(part_s, part_t, key)
    # A key range arrives sorted by key, so a repeated target key follows its first row.
    repeated = pl.all_horizontal([pl.col(k).eq_missing(pl.col(k).shift(1)) for k in key])
    t = t.filter(~repeated.fill_null(False))
    t_names = {f: f"__t_{i}" for i, f in enumerate(fields)}
    t = t.rename(t_names).with_columns(pl.lit(True).alias("__in_t"))
    joined = s.join(t, on=key, how="left", coalesce=True, maintain_order="left")
    present = pl.col("__in_t").fill_null(False)
    if presence_only or not fields:
        return joined.with_columns(present.alias(lag.AGREES))
    flags = [f"__d{i}" for i in range(len(fields))]
    joined = joined.with_columns(
        differs(pl.col(f), part_s.schema[f], pl.col(t_names[f]), part_t.schema[f]).alias(d)
        for f, d in zip(fields, flags, strict=True)
    )
    if tolerances:
        s_names = {f: f for f in fields}
        joined, _ = _apply_tolerances(joined, fields, flags, s_names, t_names, tolerances)
    return joined.with_columns((present & ~pl.any_horizontal(flags)).alias(lag.AGREES))


def measure(
    criterion: SuccessCriterion,
    *,
    now: datetime,
    counted_from: datetime | None,
    late_from: datetime | None = None,
) -> tuple[lag.FreshnessResult, dict[str, Any]]:
    """The figures of one measurement (nothing stored); MeasurementFailed says why not.

    ``late_from``: the change time of the oldest record the previous measurement found late;
    the read goes back to it (within the criterion's window), so a late record stays late
    until the target shows it, however long ago it changed."""
    from planner.runs.chunked import KeyRanges, MergeState, NotInKeyOrder
    from planner.runs.stages import open_side
    from planner.runs.streamed import prefetch

    reason = problem(criterion)
    if reason:
        raise MeasurementFailed(f"This criterion cannot be measured: {reason}.")
    connection = criterion.freshness_connection
    assert connection is not None and criterion.target is not None
    source = open_side("source", connection.source)
    target = open_side("target", connection.target)
    plan = _Plan(criterion, source, target)
    cfg = plan.settings
    window = lag.Window(
        now=now,
        target_seconds=lag.target_seconds(criterion.target, criterion.unit) or 0,
        comparator=criterion.comparator,
        skew_seconds=cfg.skew_seconds,
        counted_from=counted_from,
    )
    read_from = None
    if counted_from is not None:
        read_from = counted_from - timedelta(seconds=cfg.overlap_seconds)
        if late_from is not None:
            window_start = _first_counted(criterion, now)
            read_from = min(read_from, max(late_from, window_start or late_from))
    target_from = read_from - timedelta(seconds=cfg.skew_seconds) if read_from else None
    joined = _joined(plan, source, target, window, read_from, target_from)
    if isinstance(joined, tuple):
        return joined
    ordered = True
    while True:
        tally = lag.FreshnessTally(window, plan.key)
        state = MergeState()
        source_chunks, source_how = _source_chunks(plan, source, target, read_from, ordered)
        target_chunks, target_how = _target_chunks(plan, target, target_from, ordered)
        ranges = KeyRanges(prefetch(source_chunks), prefetch(target_chunks), plan.key, state=state)
        try:
            for part_s, part_t in ranges:
                if part_s.height:
                    tally.add(
                        judge_range(
                            part_s,
                            part_t,
                            plan.key,
                            plan.fields,
                            presence_only=cfg.basis == FreshnessSettings.Basis.CREATED,
                            tolerances=plan.tolerances,
                        )
                    )
            break
        except NotInKeyOrder as exc:
            if not ordered:
                raise MeasurementFailed(f"The key order could not be settled: {exc}.") from None
            ordered, why_whole = False, str(exc)
        except ConnectorError as exc:
            raise MeasurementFailed(exc.message) from None
    result = tally.result()
    held = [how == WHOLE for how in (source_how, target_how)]
    reading = {
        "mode": "whole" if all(held) else "mixed" if any(held) else "streamed",
        "source": source_how,
        "target": target_how,
        "read_from": read_from.isoformat() if read_from else None,
        "source_rows": ranges.source.rows,
        "target_rows": ranges.target.rows,
        "null_keys_source": ranges.source.null_keys,
        "peak_rows_held": state.peak_buffer_rows,
    }
    if not ordered:
        reading["why_whole"] = why_whole
    elif any(held):
        reading["why_whole"] = "; ".join(
            _why_whole(side, order, plan.unordered)
            for side, order, whole in zip(
                (source, target), (plan.order, plan.key), held, strict=True
            )
            if whole
        )
    if joined:
        reading["join_blocked"] = joined
    return result, reading


def _joined(
    plan: _Plan,
    source: Side,
    target: Side,
    window: lag.Window,
    read_from: datetime | None,
    target_from: datetime | None,
) -> tuple[lag.FreshnessResult, dict[str, Any]] | str:
    """The measurement by a join inside the one database of both sides, or why not ("" when
    the sides are not both PostgreSQL: there was no join to consider)."""
    if not settings.AETHON_RUN_JOIN:
        return ""
    from planner.runs import freshness_join

    if plan.order is None:
        return "the target's key is computed by a rule"
    setup = freshness_join.Setup(
        usable=plan.usable,
        fields=plan.fields,
        order=plan.order,
        tolerances=plan.tolerances,
        presence_only=plan.settings.basis == FreshnessSettings.Basis.CREATED,
        source_time=plan.settings.source_time_field,
        target_time=plan.settings.target_time_field,
        source_from=read_from,
        target_from=target_from,
    )
    choice = freshness_join.choice_for(source, target, setup)
    why = freshness_join.why_not(source, target, choice)
    if why is None:
        return ""
    if why:
        return why
    tally = lag.FreshnessTally(window, plan.key)

    def judge(s_rows: pl.DataFrame, t_rows: pl.DataFrame) -> pl.DataFrame:
        return judge_range(
            _mapped(plan, source, target, s_rows, read_from),
            _selected(plan, t_rows, target_from),
            plan.key,
            plan.fields,
            presence_only=setup.presence_only,
            tolerances=plan.tolerances,
        )

    reading = freshness_join.measure_joined(
        source, target, setup, choice, tally, judge, batch_rows=settings.AETHON_RUN_CHUNK_ROWS
    )
    if isinstance(reading, str):
        return reading
    reading["read_from"] = read_from.isoformat() if read_from else None
    return tally.result(), reading


def measure_and_record(criterion: SuccessCriterion, *, now: datetime | None = None):
    """One measurement stored as one point, or the reason on the state (and None)."""
    now = now or timezone.now()
    state, _ = FreshnessState.objects.get_or_create(criterion=criterion)
    started_from = state.counted_until
    counted_from = started_from or _first_counted(criterion, now)
    late_from = state.figures.get("oldest_late") if started_from else None
    started = time.perf_counter()
    try:
        result, reading = measure(
            criterion,
            now=now,
            counted_from=counted_from,
            late_from=datetime.fromisoformat(late_from) if late_from else None,
        )
    except MeasurementFailed as exc:
        FreshnessState.objects.filter(pk=state.pk).update(last_error=exc.message, error_at=now)
        return None
    until = result.counted_until
    if counted_from is not None and until < counted_from:
        until = counted_from  # a longer target: nothing newly decided, never count twice
    figures = {
        k: v
        for k, v in asdict(result).items()
        if k not in ("late_examples", "counted_from", "counted_until", "oldest_late")
    }
    figures["oldest_late"] = result.oldest_late.isoformat() if result.oldest_late else None
    figures["share_within_pct"] = result.share_within_pct
    figures["reading"] = reading
    figures["seconds"] = round(time.perf_counter() - started, 3)
    with transaction.atomic():
        # Two measurements at once (the schedule and "Measure now"): the first to finish
        # moves the cutoff; the other counted the same records and is dropped.
        moved = FreshnessState.objects.filter(pk=state.pk, counted_until=started_from).update(
            counted_until=until,
            measured_at=now,
            pending=result.pending,
            unmeasured=result.unmeasured,
            late_examples=result.late_examples,
            figures=figures,
            last_error="",
            error_at=None,
        )
        if not moved:
            return None
        point = record_point(
            criterion,
            at=now,
            good=result.good,
            total=result.total,
            lag_p50=result.lag_p50,
            lag_p95=result.lag_p95,
            lag_p99=result.lag_p99,
            lag_max=result.lag_max,
            late_now=result.late_now,
        )
    # The burn-rate rules look at the point once it is stored; alerting never undoes it.
    slo_alerts.evaluate_after(criterion, now)
    return point


def latest_point(criterion: SuccessCriterion) -> SliPoint | None:
    return (
        SliPoint.objects.filter(criterion=criterion, resolution=SliPoint.Resolution.RAW)
        .order_by("-at")
        .first()
    )


MEASURE_TASK = "planner.freshness_tasks.measure"


def request_measurement(criterion: SuccessCriterion) -> str:
    """'Measure now': queue one measurement for a worker; returns what the person is told.

    Raises MeasurementFailed when the criterion cannot be measured or no worker can be reached
    (then the reason is kept on the criterion's state, as a failed measurement's is).
    """
    from aethon.celery import app

    reason = problem(criterion)
    if reason:
        raise MeasurementFailed(f"This criterion cannot be measured: {reason}.")
    try:
        publish(app.tasks[MEASURE_TASK], criterion.pk)
    except QueueUnreachable:
        message = "The task queue is unreachable: no worker can measure now."
        FreshnessState.objects.update_or_create(
            criterion=criterion, defaults={"last_error": message, "error_at": timezone.now()}
        )
        raise MeasurementFailed(message) from None
    return "Measurement queued: the figures appear when a worker has read both systems."
