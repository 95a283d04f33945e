"""Key-ordered, chunk-against-chunk reconciliation: memory bounded by the chunk, not the table.

Both sides arrive sorted by the compared key (SQL connectors' ``fetch_ordered``: text by code
point, NULLs last). Each side's rows are buffered; the rows whose key is *strictly* below the
smaller of the two buffers' last keys are complete on both sides (every later row has a larger
or equal key), so they are compared with :func:`planner.runs.reconcile.reconcile`, the one
comparison every path uses, and dropped. Rows equal to the bound wait for the next chunk, so
duplicates of a key that straddle a chunk boundary are judged together. The side that is behind
is read next, so neither buffer holds much more than a chunk (a key repeated more often than a
chunk holds is the exception: its rows are kept together).

Rows with a null key part are counted and dropped on arrival, as the in-memory path counts
them. If a side turns out not to be in key order (a key computed by a rule that does not keep
the order, text keys meeting number keys), :class:`NotInKeyOrder` is raised and the caller
compares the whole tables instead, saying why.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from planner.runs.reconcile import ReconcileReport, reconcile, sort_by_key


class NotInKeyOrder(Exception):
    """A side's rows are not sorted by the key the way polars sorts them."""


@dataclass
class MergeState:
    """What the merge learned besides the report (for the run's figures)."""

    chunks: int = 0
    peak_buffer_rows: int = 0
    stopped_early: bool = False  # the difference limit was reached


def _lt(cols: Sequence[pl.Expr], bound: Sequence[pl.Expr]) -> pl.Expr:
    """Lexicographic ``cols < bound`` over a compound key."""
    expr = pl.lit(False)
    for i in reversed(range(len(cols))):
        expr = (cols[i] < bound[i]) | ((cols[i] == bound[i]) & expr)
    return expr


def _key_row(frame: pl.DataFrame, key: list[str], index: int) -> tuple[Any, ...]:
    return tuple(frame.get_column(k)[index] for k in key)


def _bound_exprs(frame: pl.DataFrame, key: list[str], row: tuple[Any, ...]) -> list[pl.Expr]:
    return [pl.lit(v, dtype=frame.schema[k]) for k, v in zip(key, row, strict=True)]


def _check_sorted(frame: pl.DataFrame, key: list[str], after: tuple[Any, ...] | None) -> None:
    if frame.height == 0:
        return
    cols = [pl.col(k) for k in key]
    prev = [pl.col(k).shift(1) for k in key]
    backwards = frame.select(_lt(cols, prev).fill_null(False).any()).item()
    if backwards or (after is not None and _key_row(frame, key, 0) < after):
        raise NotInKeyOrder(
            f"rows are not in the order of the key ({', '.join(key)}) as the database sent them"
        )


class _Stream:
    """One side: its chunk iterator, buffered rows, and the null-key rows it dropped."""

    def __init__(self, chunks: Iterator[pl.DataFrame], key: list[str]) -> None:
        self.chunks = chunks
        self.key = key
        self.buffer: pl.DataFrame | None = None
        self.done = False
        self.rows = 0
        self.null_keys = 0
        self.last: tuple[Any, ...] | None = None
        self.template: pl.DataFrame | None = None  # the columns and dtypes, without rows

    def pull(self) -> int:
        """Read one more chunk into the buffer; returns the rows read (0 at the end)."""
        for chunk in self.chunks:
            self.rows += chunk.height
            keyed = chunk
            if any(chunk.get_column(k).null_count() for k in self.key):
                keyed = chunk.filter(~pl.any_horizontal([pl.col(k).is_null() for k in self.key]))
            self.null_keys += chunk.height - keyed.height
            _check_sorted(keyed, self.key, self.last)
            if self.template is None:
                self.template = chunk.clear()
            if keyed.height:
                self.last = _key_row(keyed, self.key, keyed.height - 1)
                self.buffer = (
                    keyed
                    if self.buffer is None
                    else pl.concat([self.buffer, keyed], how="vertical_relaxed")
                )
            return chunk.height
        self.done = True
        return 0

    def take_below(self, bound: tuple[Any, ...] | None) -> pl.DataFrame | None:
        """Remove and return the buffered rows with a key below ``bound`` (all when None)."""
        if self.buffer is None:
            return None
        if bound is None:
            out, self.buffer = self.buffer, None
            return out
        column = self.buffer.get_column(self.key[0])
        if len(self.key) == 1 and (column.dtype.is_integer() or column.dtype == pl.String):
            # The buffer is sorted by the key without nulls (checked on arrival): the rows
            # below the bound are a prefix, found by binary search instead of two filters.
            # (Integers and text only: a float key's NaN sorts last yet is below nothing.)
            cut = int(column.search_sorted(pl.Series([bound[0]], dtype=column.dtype))[0])
            out, self.buffer = self.buffer.head(cut), self.buffer.slice(cut)
            return out
        below = _lt([pl.col(k) for k in self.key], _bound_exprs(self.buffer, self.key, bound))
        out = self.buffer.filter(below)
        self.buffer = self.buffer.filter(~below)
        return out


def _orders_alike(a: pl.DataType, b: pl.DataType) -> bool:
    return a == b or a == pl.Null or b == pl.Null or (a.is_numeric() and b.is_numeric())


def _check_key_types(s: _Stream, t: _Stream, key: list[str]) -> None:
    """Text keys meeting number keys sort differently ('10' < '9'): no merge on those."""
    if s.template is None or t.template is None:
        return
    for k in key:
        a, b = s.template.schema[k], t.template.schema[k]
        if not _orders_alike(a, b):
            raise NotInKeyOrder(f"the key field '{k}' is {a} on one side and {b} on the other")


def _template(own: _Stream, other: _Stream) -> pl.DataFrame:
    """No rows of this side in the range: an empty frame with its (or the other's) columns."""
    frame = own.template if own.template is not None else other.template
    assert frame is not None
    return frame


@dataclass
class _Totals:
    key: list[str]
    fields: list[str]
    max_examples: int
    matched: int = 0
    equal: int = 0
    dups_s: int = 0
    dups_t: int = 0
    missing: list[pl.DataFrame] = field(default_factory=list)
    extra: list[pl.DataFrame] = field(default_factory=list)
    mismatches: list[pl.DataFrame] = field(default_factory=list)
    mismatch_counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    as_text: dict[str, None] = field(default_factory=dict)
    tolerances: dict[str, str] = field(default_factory=dict)
    within_tolerance: dict[str, int] = field(default_factory=dict)
    differences: int = 0

    def add(self, part: ReconcileReport) -> None:
        self.matched += part.matched_count
        self.equal += part.equal_count
        self.dups_s += part.duplicate_rows_source
        self.dups_t += part.duplicate_rows_target
        for bucket, frame in (
            (self.missing, part.missing_in_target),
            (self.extra, part.extra_in_target),
            (self.mismatches, part.mismatches),
        ):
            if frame.height:
                bucket.append(frame)
        for name, n in part.mismatch_counts.items():
            self.mismatch_counts[name] = self.mismatch_counts.get(name, 0) + n
        for name, items in part.examples.items():
            # Key ranges arrive in code point order; the whole-table path lists numbers held
            # as text by value (2 before 10): keep the first examples in that order.
            kept = [*self.examples.get(name, []), *items]
            kept.sort(key=lambda e: _example_order(e["key"], self.key))
            self.examples[name] = kept[: self.max_examples]
        self.as_text.update(dict.fromkeys(part.compared_as_text))
        self.tolerances.update(part.tolerances)
        for name, n in part.within_tolerance.items():
            self.within_tolerance[name] = self.within_tolerance.get(name, 0) + n
        self.differences += (
            part.missing_in_target.height + part.extra_in_target.height + part.mismatched_count
        )


def _example_order(key: dict[str, Any], names: list[str]) -> tuple:
    """An example's place in :func:`planner.runs.reconcile.sort_by_key`'s order."""
    out: list[tuple] = []
    for name in names:
        value = key.get(name)
        if isinstance(value, str):
            number = None
            if value == value.strip():
                try:
                    number = float(value)
                except ValueError:
                    number = None
            out.append((number is None, number or 0.0, value))
        else:
            out.append((value is None, value if value is not None else 0, ""))
    return tuple(out)


def _examples_by_field(totals: _Totals) -> dict[str, list[dict[str, Any]]]:
    """In the fields' order, not the order key ranges (or partitions) happened to show them."""
    order = [f for f in totals.fields if f in totals.examples]
    return {f: totals.examples[f] for f in [*order, *totals.examples.keys() - set(order)]}


def _concat(parts: list[pl.DataFrame], template: pl.DataFrame) -> pl.DataFrame:
    return pl.concat(parts, how="vertical_relaxed") if parts else template


class KeyRanges:
    """Two key-sorted chunk streams as pairs of frames over the same key range.

    Iterating yields ``(source_part, target_part)``: every row of either side whose key lies
    in the range, so a key is always judged with all its rows on both sides. ``on_rows(n)``
    is called after each chunk read (progress, cancellation). ``source``/``target`` keep the
    streams' counts (rows read, null keys dropped) for the caller's report.
    """

    def __init__(
        self,
        source: Iterator[pl.DataFrame],
        target: Iterator[pl.DataFrame],
        key: Sequence[str],
        *,
        on_rows: Callable[[int], None] | None = None,
        state: MergeState | None = None,
    ) -> None:
        self.key = list(key)
        self.source = _Stream(source, self.key)
        self.target = _Stream(target, self.key)
        self.on_rows = on_rows
        self.state = state if state is not None else MergeState()

    def __iter__(self) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        s, t, key, state = self.source, self.target, self.key, self.state
        pull_s = pull_t = True
        while True:
            for stream, wanted in ((s, pull_s), (t, pull_t)):
                if wanted and not stream.done:
                    n = stream.pull()
                    if self.on_rows is not None and n:
                        self.on_rows(n)
            if (s.buffer is None and not s.done) or (t.buffer is None and not t.done):
                # A side has read nothing with a key yet: read on before judging anything.
                pull_s, pull_t = s.buffer is None, t.buffer is None
                continue
            _check_key_types(s, t, key)
            open_lasts = [x.last for x in (s, t) if not x.done and x.last is not None]
            bound = min(open_lasts) if open_lasts else None
            part_s, part_t = s.take_below(bound), t.take_below(bound)
            state.chunks += 1
            held = sum(x.buffer.height for x in (s, t) if x.buffer is not None)
            state.peak_buffer_rows = max(state.peak_buffer_rows, held)
            if part_s is not None or part_t is not None:
                part_s = part_s if part_s is not None else _template(s, t)
                part_t = part_t if part_t is not None else _template(t, s)
                if part_s.height or part_t.height:
                    yield part_s, part_t
            if s.done and t.done and s.buffer is None and t.buffer is None:
                return
            # Read next from the side that is behind (both when level), so buffers stay small.
            pull_s = not s.done and (t.done or s.last is None or t.last is None or s.last <= t.last)
            pull_t = not t.done and (s.done or s.last is None or t.last is None or t.last <= s.last)
            if not (pull_s or pull_t):
                pull_s, pull_t = not s.done, not t.done


def merge_compare(
    source: Iterator[pl.DataFrame],
    target: Iterator[pl.DataFrame],
    key: Sequence[str],
    fields: Sequence[str],
    *,
    max_examples: int = 20,
    max_differences: int | None = None,
    on_rows: Callable[[int], None] | None = None,
    state: MergeState | None = None,
    tolerances: dict | None = None,
) -> ReconcileReport:
    """:func:`reconcile` of two key-sorted chunk streams, one key range at a time.

    ``on_rows(n)`` is called after each chunk read (progress, cancellation). With
    ``max_differences`` the merge stops once that many differences (missing, extra and
    mismatched keys) were found; ``state.stopped_early`` then says the counts are partial.
    ``tolerances`` are the mapping rows' stated tolerances, applied in each key range.
    """
    key = list(key)
    fields = [f for f in dict.fromkeys(fields) if f not in key]
    state = state if state is not None else MergeState()
    ranges = KeyRanges(source, target, key, on_rows=on_rows, state=state)
    totals = _Totals(key, fields, max_examples)
    for part_s, part_t in ranges:
        totals.add(reconcile(part_s, part_t, key, fields, max_examples, tolerances=tolerances))
        if max_differences is not None and totals.differences >= max_differences:
            state.stopped_early = True
            _close(source, target)
            break
    s, t = ranges.source, ranges.target
    template = s.template if s.template is not None else t.template
    return _report(totals, template, (s.rows, t.rows), (s.null_keys, t.null_keys))


def compare_pairs(
    pairs: Iterator[tuple[pl.DataFrame, pl.DataFrame]],
    key: Sequence[str],
    fields: Sequence[str],
    template: pl.DataFrame,
    *,
    max_examples: int = 20,
    max_differences: int | None = None,
    state: MergeState | None = None,
    tolerances: dict | None = None,
) -> ReconcileReport:
    """:func:`reconcile` of pairs of frames that each hold every row of their keys.

    Unlike :func:`merge_compare` nothing is buffered: each pair is complete for its keys (a
    database joined the sides, and no key repeats). In key order, the examples kept are the
    merge's (the first ones by key); the counts hold in any order. Rows with a null key part
    are counted and dropped, as the merge drops them. ``template`` gives the key columns'
    dtypes when no pair arrives. The report counts only the rows of the pairs.
    """
    key = list(key)
    fields = [f for f in dict.fromkeys(fields) if f not in key]
    state = state if state is not None else MergeState()
    totals = _Totals(key, fields, max_examples)
    rows, nulls = [0, 0], [0, 0]
    has_null = pl.any_horizontal([pl.col(k).is_null() for k in key])
    seen = False
    for pair in pairs:
        if not seen:
            template, seen = pair[0].clear(), True  # the dtypes the merge's lists would have
        keyed = []
        for i, part in enumerate(pair):
            rows[i] += part.height
            whole = part.filter(~has_null)
            nulls[i] += part.height - whole.height
            keyed.append(whole)
        state.chunks += 1
        state.peak_buffer_rows = max(state.peak_buffer_rows, sum(p.height for p in pair))
        totals.add(reconcile(*keyed, key, fields, max_examples, tolerances=tolerances))
        if max_differences is not None and totals.differences >= max_differences:
            state.stopped_early = True
            _close(pairs)
            break
    return _report(totals, template, (rows[0], rows[1]), (nulls[0], nulls[1]))


def _close(*iterators: Iterator[pl.DataFrame]) -> None:
    for it in iterators:
        close = getattr(it, "close", None)
        if close is not None:
            close()  # ends a server-side cursor early


def _report(
    totals: _Totals,
    template: pl.DataFrame | None,
    rows: tuple[int, int],
    null_keys: tuple[int, int],
) -> ReconcileReport:
    key = totals.key
    if template is not None:
        keys_only = template.select(key)
    else:
        keys_only = pl.DataFrame(schema=dict.fromkeys(key, pl.String))
    no_mismatch = keys_only.with_columns(
        pl.lit(None, pl.String).alias(c) for c in ("field", "source_value", "target_value")
    )
    return ReconcileReport(
        key=key,
        fields=totals.fields,
        source_count=rows[0],
        target_count=rows[1],
        matched_count=totals.matched,
        equal_count=totals.equal,
        # Each key range's lists are sorted as reconcile() sorts (numbers held as text by
        # value); across ranges they arrive in code point order, so sort the whole again.
        missing_in_target=sort_by_key(_concat(totals.missing, keys_only), key),
        extra_in_target=sort_by_key(_concat(totals.extra, keys_only), key),
        mismatch_counts={f: totals.mismatch_counts.get(f, 0) for f in totals.fields},
        examples=_examples_by_field(totals),
        null_keys_source=null_keys[0],
        null_keys_target=null_keys[1],
        duplicate_rows_source=totals.dups_s,
        duplicate_rows_target=totals.dups_t,
        compared_as_text=list(totals.as_text),
        mismatches=sort_by_key(_concat(totals.mismatches, no_mismatch), key, "field"),
        tolerances=totals.tolerances,
        within_tolerance=totals.within_tolerance,
    )


def combine_reports(reports: Sequence[ReconcileReport], max_examples: int) -> ReconcileReport:
    """The reports of consecutive key spans (in key order) as the report of one pass over all
    of them: counts summed, the first ``max_examples`` examples kept, lists sorted again."""
    first = reports[0]
    key = list(first.key)
    totals = _Totals(key, list(first.fields), max_examples)
    for part in reports:
        totals.add(part)
    keys_only = first.missing_in_target.clear()
    no_mismatch = first.mismatches.clear()
    return ReconcileReport(
        key=key,
        fields=totals.fields,
        source_count=sum(r.source_count for r in reports),
        target_count=sum(r.target_count for r in reports),
        matched_count=totals.matched,
        equal_count=totals.equal,
        missing_in_target=sort_by_key(_concat(totals.missing, keys_only), key),
        extra_in_target=sort_by_key(_concat(totals.extra, first.extra_in_target.clear()), key),
        mismatch_counts={f: totals.mismatch_counts.get(f, 0) for f in totals.fields},
        examples=_examples_by_field(totals),
        null_keys_source=sum(r.null_keys_source for r in reports),
        null_keys_target=sum(r.null_keys_target for r in reports),
        duplicate_rows_source=totals.dups_s,
        duplicate_rows_target=totals.dups_t,
        compared_as_text=list(totals.as_text),
        mismatches=sort_by_key(_concat(totals.mismatches, no_mismatch), key, "field"),
        tolerances=totals.tolerances,
        within_tolerance=totals.within_tolerance,
    )


_END = object()


def in_background(
    items: Iterator[Any], depth: int = 1, on_wait: Callable[[], None] | None = None
) -> _Consumer:
    """Produce ``items`` in a thread of their own, started now, at most ``depth`` ahead.

    The producer opens, uses and closes whatever session its iterator holds itself; when
    the consumer stops early (``close()``, an error) the producer stops at its next item. An
    exception in the producer is raised in the consumer. ``on_wait`` is called in the
    consumer's thread about twice a second while it waits for an item.
    """
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((_END, exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        put((_END, None))

    thread = threading.Thread(target=produce, name="aethon-background", daemon=True)
    thread.start()
    return _Consumer(box, stop, thread, on_wait)


class _Consumer:
    """The consuming end of :func:`in_background`; ``close()`` stops the producer even when
    nothing was taken yet."""

    def __init__(
        self,
        box: queue.Queue[Any],
        stop: threading.Event,
        thread: threading.Thread,
        on_wait: Callable[[], None] | None = None,
    ):
        self.box, self.stop, self.thread, self.on_wait = box, stop, thread, on_wait
        self.done = False

    def __iter__(self) -> _Consumer:
        return self

    def __next__(self) -> Any:
        if self.done:
            raise StopIteration
        while True:
            try:
                item = self.box.get(timeout=0.5 if self.on_wait is not None else None)
                break
            except queue.Empty:
                self.on_wait()  # type: ignore[misc]
        if isinstance(item, tuple) and item and item[0] is _END:
            self.close()
            if item[1] is not None:
                raise item[1]
            raise StopIteration
        return item

    def close(self) -> None:
        self.done = True
        self.stop.set()
        self.thread.join(timeout=60)
