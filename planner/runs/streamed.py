"""Runs on SQL systems that never hold a whole table.

Both sides are read in the target key's order in chunks (one server-side cursor or
unbuffered statement per side), each source chunk goes through the mapping engine, and the
transformed chunk is compared with the target's rows of the same key range
(:func:`planner.runs.chunked.merge_compare`). The mapping stage and the reconciliation are
computed in the same pass, so the source is read once.

CSV and NDJSON files and HTTP APIs cannot sort themselves: their batches are sorted through
temporary files (:mod:`planner.runs.spill`), memory bounded by the chunk. A run falls back to
reading whole tables, and its figures say why, when a side is parsed whole (JSON and XLSX
files, file content given as bytes), when the target's key is computed by a rule (the
source's order then says nothing about the output's), or when the rows turn out not to be in
key order.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from django.conf import settings

from planner.connectors.base import ConnectorError
from planner.mapping.engine import CompiledMapping, FieldPlan, ValidationReport, Violation
from planner.mapping.transforms import REASONS
from planner.models import FieldMapping
from planner.runs import spill
from planner.runs.chunked import (
    MergeState,
    NotInKeyOrder,
    combine_reports,
    in_background,
    merge_compare,
)
from planner.runs.joined import Joined, joined_compare, why_not_joined
from planner.runs.pushdown import (
    Choice,
    KeySpan,
    RangeSide,
    Walk,
    choose_columns,
    kinds,
    ranged,
    sample_where,
    source_side,
    target_side,
    walk_ranges,
)
from planner.runs.reconcile import ReconcileReport
from planner.runs.stages import (
    MAX_EXAMPLES,
    CompareOutcome,
    MappingOutcome,
    Side,
    _plans,
    as_read,
    compare_outcome,
    mapping_outcome,
    target_key_columns,
    tolerances_of,
)

_IDENTITY = {"", "identity"}


def reads_in_key_order(side: Side) -> bool:
    """The system sorts for us (SQL); other sides are sorted through disk, or held whole."""
    return side.ok and callable(getattr(side.connector, "fetch_ordered", None))


def why_unordered(side: Side) -> str | None:
    """Why a side cannot be read in key order at all (None: it can)."""
    if reads_in_key_order(side):
        return None
    if not side.ok:
        return "it is not connected"
    return spill.why_whole(side.connector)


def key_ordered(
    side: Side,
    order: list[str],
    chunk_rows: int,
    where: str | None = None,
    read_ahead: ReadAhead | None = None,
) -> Iterator[pl.DataFrame]:
    """The side's rows in ``order``: sorted by the database, else through temporary files
    (the rows read for the sort counted by ``read_ahead``)."""
    connector = side.connector
    if reads_in_key_order(side):
        return connector.fetch_ordered(order, chunk_rows, where=where)  # type: ignore[union-attr]
    # Batches as the whole-table path reads them (an API's pages), so types join alike.
    page = getattr(getattr(connector, "config", None), "page_size", None)
    batches = connector.fetch(batch_size=page or spill.RUN_ROWS)  # type: ignore[union-attr]
    if read_ahead is not None:
        batches = counted(batches, read_ahead.add)
    folder = getattr(settings, "AETHON_RUN_SPILL_DIR", "") or None
    return spill.sorted_chunks(batches, order, chunk_rows, folder=folder)


def _both_sql(*sides: Side) -> bool:
    return all(reads_in_key_order(s) for s in sides)


@dataclass
class Partial:
    """What one pass over a span of keys found, before it becomes stage results: the spans
    of a partitioned run (planner.runs.partitions) are combined from these."""

    report: ReconcileReport  # counts include the rows the push-down counted without reading
    state: MergeState
    mapping: _MappingTotals | None = None  # None for a parallel run
    walk: dict[str, Any] | None = None  # the push-down's figures, when it ran


@dataclass
class Context:
    """What every span of a run shares: the plan of the pass and its fixed figures."""

    usable: list[FieldPlan]
    broken: list[dict[str, str]]
    not_compared: list[str]
    broken_tolerances: list[str]
    figures: dict[str, Any]  # chunk size, limits, push-down choice, sample


@dataclass
class Streamed:
    mapped: MappingOutcome | None
    compared: CompareOutcome
    figures: dict[str, Any]
    partial: Partial | None = None
    context: Context | None = None


@dataclass
class _MappingTotals:
    key_columns: list[str] = field(default_factory=list)
    records: int = 0
    violations: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: list[Violation] = field(default_factory=list)
    _per_reason: dict[tuple[str, str, bool], int] = field(default_factory=dict)

    def add(self, part: ValidationReport) -> None:
        self.key_columns = part.key_columns
        self.records += part.records
        for target, reasons in part.violations.items():
            mine = self.violations.setdefault(target, {})
            for reason, n in reasons.items():
                mine[reason] = mine.get(reason, 0) + n
        for v in part.examples:
            # Rows with a null key part sort among the others in a SQL read, but a partitioned
            # run reads them last: they are kept apart and come after the keyed rows' examples.
            slot = (v.field, v.reason, _null_key(v.key))
            seen = self._per_reason.get(slot, 0)
            if seen < MAX_EXAMPLES:
                self._per_reason[slot] = seen + 1
                self.examples.append(v)

    def add_counted(self, records: int, violations: dict[str, dict[str, int]]) -> None:
        """Rows checked inside the database: counted, never read, so no examples."""
        self.records += records
        for target, reasons in violations.items():
            mine = self.violations.setdefault(target, {})
            for reason, n in reasons.items():
                mine[reason] = mine.get(reason, 0) + n

    def report(self, order: list[str] | None = None) -> ValidationReport:
        # The transformed rows were compared chunk by chunk; none is kept. Examples by field
        # and reason in the engine's order, each in key order, those of null keys last:
        # where chunks (or partitions) begin does not show.
        fields = {name: i for i, name in enumerate(order or self.violations)}
        reasons = {name: i for i, name in enumerate(REASONS)}

        def order(v: Violation) -> tuple[int, int, bool]:
            return (fields.get(v.field, len(fields)), reasons.get(v.reason, -1), _null_key(v.key))

        examples, taken = [], {}
        for v in sorted(self.examples, key=order):
            n = taken.get((v.field, v.reason), 0)
            if n < MAX_EXAMPLES:
                taken[(v.field, v.reason)] = n + 1
                examples.append(v)
        return ValidationReport(
            self.records, self.violations, examples, pl.DataFrame(), self.key_columns
        )


def _null_key(key: Any) -> bool:
    return key is None or (isinstance(key, tuple) and any(k is None for k in key))


def source_order(source: Side, target: Side, usable: list[FieldPlan]) -> list[str] | str:
    """The source fields to sort by so the mapped target key comes out sorted, or why none."""
    plans = {p.spec.target_field: p for p in usable}
    order = []
    for name in target.key:
        plan = plans.get(name)
        if plan is not None:
            rule = " ".join((plan.spec.rule or "").split()).lower()
            if rule not in _IDENTITY or not plan.spec.source_field:
                return (
                    f"the target's key field '{name}' is computed by the rule '{plan.spec.rule}',"
                    " so the source's order is not the output's"
                )
            order.append(plan.spec.source_field)
        elif name in source.key:
            order.append(name)
        else:
            return f"the target's key field '{name}' is not produced by the mapping"
    return order


class ReadAhead:
    """Progress of sides sorted through disk, reported from the run's own thread.

    Such a side reads its whole source (in a producer thread) before its first sorted chunk.
    The rows it reads are counted here and reported by :meth:`report` (called while the
    merge waits); when the merge later reads those rows again in key order, :meth:`merged`
    does not count them twice.
    """

    def __init__(self, on_rows: Callable[[int], None]) -> None:
        self.on_rows = on_rows
        self._lock = threading.Lock()
        self._unreported = 0
        self._ahead = 0  # reported before the merge read them

    def add(self, n: int) -> None:
        with self._lock:
            self._unreported += n

    def report(self) -> None:
        with self._lock:
            n, self._unreported = self._unreported, 0
            self._ahead += n
        self.on_rows(n)  # also with 0: the run looks at its cancel flag

    def merged(self, n: int) -> None:
        self.report()
        with self._lock:
            known = min(n, self._ahead)
            self._ahead -= known
        self.on_rows(n - known)


def counted(batches: Iterator[pl.DataFrame], add: Callable[[int], None]) -> Iterator[pl.DataFrame]:
    try:
        for batch in batches:
            add(batch.height)
            yield batch
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def prefetch(
    chunks: Iterator[pl.DataFrame], depth: int = 1, on_wait: Callable[[], None] | None = None
) -> Iterator[pl.DataFrame]:
    """Produce ``chunks`` in a thread of their own, at most ``depth`` chunks ahead.

    ``on_wait`` is called in the consumer's thread about twice a second while it waits (a
    side sorted through disk reads the whole source before its first chunk: progress and
    cancellation go on meanwhile).

    While the merge compares one key range, each side already reads (and the source already
    transforms) the next chunk: the database, polars and the comparison overlap instead of
    taking turns. The producer thread opens, uses and closes its connector's session itself;
    when the consumer stops early (cancel, difference limit, an error) the producer stops
    at its next chunk and closes its cursor.
    """
    consumer = in_background(chunks, depth, on_wait)
    try:
        yield from consumer
    finally:
        consumer.close()


def _closing(chunks: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """Close the connector's generator (its cursor and session) however the merge ends."""
    try:
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def streamed_validation(
    source: Side,
    target: Side,
    rows: list[FieldMapping],
    *,
    chunk_rows: int,
    on_rows: Callable[[int], None],
    max_differences: int | None = None,
    fetch_rows: int | None = None,
    sample_percent: int | None = None,
    span: KeySpan | None = None,
    join: bool | None = None,
    on_total: Callable[[int | None], None] | None = None,
) -> Streamed | str:
    """Mapping and reconciliation in one key-ordered pass, or the reason it cannot be done.

    With ``join`` (default: the ``AETHON_RUN_JOIN`` setting), two tables of one PostgreSQL
    database are first compared by a join inside it (planner.runs.joined), which sends only
    the rows that may differ; when it cannot promise the same result, every row is read and
    the figures say why (``join_blocked``).

    With ``fetch_rows``, key ranges are first compared inside the databases where every
    column's rule compiles to SQL (planner.runs.pushdown), and only the ranges that differ
    are read, none of them larger than ``fetch_rows`` unless one key fills it. With
    ``sample_percent`` only that share of keys is read and compared (no push-down). With
    ``span`` only that share of the keys is read (one partition of a run).

    ``on_total`` learns the rows of both sides when the join counted them, or None when
    the pass reads the rows instead (the caller may count them for its progress then).
    """
    for side in (source, target):
        why = why_unordered(side)
        if why is not None:
            return f"{side.label} cannot be read in key order: {why}"
        if side.head is None:
            return f"{side.label}'s columns are not known"
    if not rows or not target.key or not source.key:
        return "the mapping or a key is missing"
    plans, broken = _plans(rows)
    source_cols = set(source.head.columns)  # type: ignore[union-attr]
    target_cols = set(target.head.columns)  # type: ignore[union-attr]
    if any(k not in source_cols for k in source.key) or any(
        k not in target_cols for k in target.key
    ):
        return "a key field is missing"
    usable = []
    for plan in plans:
        absent = sorted(plan.fields - source_cols)
        if absent:
            broken.append(
                {"field": plan.spec.target_field, "error": f"source has no {', '.join(absent)}"}
            )
        else:
            usable.append(plan)
    order = source_order(source, target, usable)
    if isinstance(order, str):
        return order
    targets = [p.spec.target_field for p in usable]
    wanted = [t for t in targets if t not in target.key]
    fields = [t for t in wanted if t in target_cols]
    not_compared = [t for t in wanted if t not in target_cols]
    compiled = CompiledMapping(usable)
    totals = _MappingTotals()
    tolerances, broken_tolerances = tolerances_of(rows)
    choice = choose_columns(source, target, usable, fields, tolerances, order)
    samples = _samples(source, target, order, target.key, sample_percent)
    if isinstance(samples, str):
        return samples
    s_sample, t_sample = samples
    if sample_percent and _both_sql(source, target):
        fetch_rows = None  # a sample is read, not checksummed
    spans = span_wheres(source, target, order, span)
    if isinstance(spans, str):
        return spans
    s_base, t_base = _all_of(s_sample, spans[0]), _all_of(t_sample, spans[1])
    if join is None:
        join = settings.AETHON_RUN_JOIN

    ahead = ReadAhead(on_rows)

    def read_source(where: str | None = None) -> Iterator[pl.DataFrame]:
        return key_ordered(source, order, chunk_rows, where or s_base, ahead)

    def read_target(where: str | None = None) -> Iterator[pl.DataFrame]:
        return key_ordered(target, target.key, chunk_rows, where or t_base, ahead)

    def map_chunk(chunk: pl.DataFrame) -> pl.DataFrame:
        part = compiled.validate(chunk, source.key, max_examples=MAX_EXAMPLES)
        totals.add(part)
        columns = target_key_columns(source, target, targets, part.key_columns)
        assert isinstance(columns, dict)  # every key field was found above
        # Identity fields are compared as read, exactly as on the whole-table path.
        output = as_read(part.output, chunk, usable)
        return output.select(
            *[expr.alias(name) for name, expr in columns.items()], *[pl.col(f) for f in fields]
        )

    # A span is one partition of a split run: the join, when it applies, covers the whole
    # table in one statement, so a split run never reaches it (planner.runs.partitions).
    if join and span is None and not sample_percent and max_differences is None:
        joined = _joined(
            source,
            target,
            usable,
            fields,
            order,
            choice,
            map_chunk,
            chunk_rows,
            on_rows,
            tolerances,
            on_total,
        )
        if isinstance(joined, Joined):
            totals.add_counted(joined.rows_equal, {})
            report = _with_unread(joined.report, joined.rows_equal)
            figures = (
                {"chunk_rows": chunk_rows, "max_differences": max_differences}
                | choice.figures()
                | joined.figures()
            )
            context = Context(usable, broken, not_compared, broken_tolerances, figures)
            return finish(Partial(report, MergeState(), totals, None), context)
        totals = _MappingTotals()  # whatever a failed join mapped is mapped again below
        join_blocked = joined  # "" when there was no join to consider
    else:
        join_blocked = ""
    if on_total is not None:
        on_total(None)
    walk, why_not = _walk(source, target, usable, fields, order, choice, fetch_rows, on_rows, span)

    def source_chunks() -> Iterator[pl.DataFrame]:
        read = ranged(read_source, walk.fetch) if walk else read_source()
        for chunk in _closing(read):
            yield map_chunk(chunk)

    def target_chunks() -> Iterator[pl.DataFrame]:
        read = ranged(read_target, walk.fetch_target) if walk else read_target()
        for chunk in _closing(read):
            yield chunk.select(*target.key, *fields)

    state = MergeState()
    try:
        report = merge_compare(
            prefetch(source_chunks(), on_wait=ahead.report),
            prefetch(target_chunks(), on_wait=ahead.report),
            target.key,
            fields,
            max_examples=MAX_EXAMPLES,
            max_differences=max_differences,
            on_rows=ahead.merged,
            state=state,
            tolerances=tolerances,
        )
    except NotInKeyOrder as exc:
        return str(exc)
    figures = {"chunk_rows": chunk_rows, "max_differences": max_differences} | choice.figures()
    figures |= _sorted_on_disk(source, target)
    if join_blocked:
        figures["join_blocked"] = join_blocked
    walked = None
    if walk is not None:
        totals.add_counted(walk.rows_skipped, walk.violations)
        report = _with_unread(report, walk.rows_skipped)
        walked = walk.figures(fetch_rows or 0)
    elif fetch_rows:
        figures["pushdown_blocked"] = why_not
    figures |= _sample_figures(sample_percent, source, target)
    context = Context(usable, broken, not_compared, broken_tolerances, figures)
    return finish(Partial(report, state, totals, walked), context)


def finish(partial: Partial, context: Context) -> Streamed:
    """The stage results of a pass (or of a partitioned run's spans, combined)."""
    figures = _figures(partial.state) | context.figures
    if partial.walk is not None:
        figures |= {"mode": "pushdown"} | partial.walk
    mapped = None
    if partial.mapping is not None:
        report = partial.mapping.report([p.spec.target_field for p in context.usable])
        mapped = mapping_outcome(report, context.usable, context.broken)
    compared = compare_outcome(partial.report, context.not_compared, context.broken_tolerances)
    compared.result.figures["reading"] = figures
    return Streamed(mapped, compared, figures, partial, context)


def combine(partials: list[Partial]) -> Partial:
    """The partials of consecutive spans, in key order, as one pass over all of them."""
    state = MergeState(
        chunks=sum(p.state.chunks for p in partials),
        peak_buffer_rows=max(p.state.peak_buffer_rows for p in partials),
        stopped_early=any(p.state.stopped_early for p in partials),
    )
    mapping = None
    if partials[0].mapping is not None:
        mapping = _MappingTotals()
        for p in partials:
            assert p.mapping is not None
            mapping.add(p.mapping.report())
    walk = None
    if partials[0].walk is not None:
        walk = dict(partials[0].walk)
        for p in partials[1:]:
            for name, value in (p.walk or {}).items():
                if name != "fetch_rows":
                    walk[name] = walk.get(name, 0) + value
    report = combine_reports([p.report for p in partials], MAX_EXAMPLES)
    return Partial(report, state, mapping, walk)


def span_wheres(
    left: Side, right: Side, left_key: list[str], span: KeySpan | None
) -> tuple[str | None, str | None] | str:
    """Each side's WHERE for a span of keys (the push-down's range SQL), or why none."""
    if span is None:
        return None, None
    sides = []
    for side, key in ((left, left_key), (right, list(right.key))):
        dialect = getattr(side.connector, "dialect", "")
        key_kinds = [kinds(side).get(k) for k in key]
        if not dialect or any(k not in ("string", "integer") for k in key_kinds):
            return f"{side.label}'s key cannot be split into ranges"
        sides.append(RangeSide(None, dialect, key, key_kinds, []).span_where(span))  # type: ignore[arg-type]
    return sides[0], sides[1]


def _all_of(*wheres: str | None) -> str | None:
    present = [f"({w})" for w in wheres if w]
    return " AND ".join(present) if present else None


def _with_unread(report: ReconcileReport, rows: int) -> ReconcileReport:
    """``report`` plus ``rows`` a side that the databases found equal without sending them."""
    return dataclasses.replace(
        report,
        source_count=report.source_count + rows,
        target_count=report.target_count + rows,
        matched_count=report.matched_count + rows,
        equal_count=report.equal_count + rows,
    )


def _joined(
    source: Side,
    target: Side,
    usable: list[FieldPlan],
    fields: list[str],
    order: list[str],
    choice: Choice,
    map_chunk: Callable[[pl.DataFrame], pl.DataFrame],
    chunk_rows: int,
    on_rows: Callable[[int], None],
    tolerances: dict,
    on_total: Callable[[int], None] | None = None,
) -> Joined | str:
    """The comparison by a join inside the one database of both sides, or why not ("" when
    the sides are not both PostgreSQL: there was no join to consider)."""
    why = why_not_joined(source, target, choice)
    if why is None:
        return ""
    if why:
        return why
    return joined_compare(
        source,
        target,
        usable,
        fields,
        order,
        choice,
        map_chunk,
        batch_rows=chunk_rows,
        on_rows=on_rows,
        tolerances=tolerances,
        on_total=on_total,
    )


def _samples(
    left: Side, right: Side, left_key: list[str], right_key: list[str], percent: int | None
) -> tuple[str | None, str | None] | str:
    """Each side's WHERE for a sample of keys, or why the pass cannot take one."""
    if not percent or not _both_sql(left, right):
        return None, None  # the figures say every key was compared
    try:
        return sample_where(left, left_key, percent), sample_where(right, right_key, percent)
    except ValueError as exc:
        return f"{exc}, so no sample can be taken: every key was compared"


def _walk(
    source: Side,
    target: Side,
    usable: list[FieldPlan],
    fields: list[str],
    order: list[str],
    choice: Choice,
    fetch_rows: int | None,
    on_rows: Callable[[int], None],
    span: KeySpan | None = None,
) -> tuple[Walk | None, str]:
    """Compare key ranges in the databases, or say why every row is read instead."""
    if not fetch_rows:
        return None, ""
    if choice.blocker:
        return None, choice.blocker
    s_conn, t_conn = source.connector, target.connector
    try:
        with s_conn.statements() as s_run, t_conn.statements() as t_run:  # type: ignore[union-attr]
            s_side = source_side(s_run, s_conn.dialect, source, order, choice, usable, fields)  # type: ignore[union-attr]
            t_side = target_side(t_run, t_conn.dialect, target, fields)  # type: ignore[union-attr]
            return walk_ranges(s_side, t_side, fetch_rows, on_rows, span), ""
    except ConnectorError as exc:
        # A database without window functions, a query dataset it cannot nest...: read all.
        return None, f"the databases could not compare key ranges ({exc})"


def streamed_parallel(
    old: Side,
    new: Side,
    rows: list[FieldMapping],
    *,
    chunk_rows: int,
    on_rows: Callable[[int], None],
    max_differences: int | None = None,
    sample_percent: int | None = None,
    span: KeySpan | None = None,
) -> Streamed | str:
    """Old output vs new output in one key-ordered pass, or the reason it cannot be done
    (with ``span``: over that share of the keys only)."""
    for side in (old, new):
        why = why_unordered(side)
        if why is not None:
            return f"{side.label} cannot be read in key order: {why}"
        if side.head is None:
            return f"{side.label}'s columns are not known"
    key = new.key
    both = set(old.head.columns) & set(new.head.columns)  # type: ignore[union-attr]
    if not key or any(k not in both for k in key):
        return "a key field is missing"
    wanted = list(dict.fromkeys(m.target_field for m in rows if m.target_field not in key))
    fields = [f for f in wanted if f in both]
    absent = [f for f in wanted if f not in both]

    samples = _samples(old, new, key, key, sample_percent)
    if isinstance(samples, str):
        return samples
    spans = span_wheres(old, new, key, span)
    if isinstance(spans, str):
        return spans
    where = {
        "old": _all_of(samples[0], spans[0]),
        "new": _all_of(samples[1], spans[1]),
    }

    ahead = ReadAhead(on_rows)

    def chunks(side: Side, name: str) -> Iterator[pl.DataFrame]:
        read = key_ordered(side, key, chunk_rows, where[name], ahead)
        for chunk in _closing(read):
            yield chunk.select(*key, *fields)

    state = MergeState()
    try:
        report = merge_compare(
            prefetch(chunks(old, "old"), on_wait=ahead.report),
            prefetch(chunks(new, "new"), on_wait=ahead.report),
            key,
            fields,
            max_examples=MAX_EXAMPLES,
            max_differences=max_differences,
            on_rows=ahead.merged,
            state=state,
        )
    except NotInKeyOrder as exc:
        return str(exc)
    figures: dict[str, Any] = {"chunk_rows": chunk_rows, "max_differences": max_differences}
    figures |= _sorted_on_disk(old, new)
    figures |= _sample_figures(sample_percent, old, new)
    return finish(Partial(report, state), Context([], [], absent, [], figures))


def _sorted_on_disk(*sides: Side) -> dict[str, Any]:
    labels = [s.label for s in sides if not reads_in_key_order(s)]
    return {"sorted_on_disk": labels} if labels else {}


def _sample_figures(sample_percent: int | None, *sides: Side) -> dict[str, Any]:
    if not sample_percent:
        return {}
    if not _both_sql(*sides):
        return {
            "sample_skipped": "a sample is taken only from SQL systems read in key order:"
            " every key was compared"
        }
    return {"sample_percent": sample_percent}


def _figures(state: MergeState) -> dict[str, Any]:
    return {
        "mode": "streamed",
        "key_ranges": state.chunks,
        "peak_rows_held": state.peak_buffer_rows,
        "stopped_early": state.stopped_early,
    }


def held_whole(reason: str, sample_percent: int | None = None) -> dict[str, Any]:
    if sample_percent:
        # A sample is taken by the databases; tables held whole are compared in full.
        reason += (
            "; a sample is taken only from SQL systems read in key order: every key was compared"
        )
    return {"mode": "whole", "reason": reason}
