"""Propagation lag (freshness): the one definition of its figures, from per-key times.

The reading (connectors, mapping, the key-ordered merge) lives in ``planner.runs.freshness``;
it hands this module, one key range at a time, a frame with the key columns and:

* ``SOURCE_TIME``: when the source record changed (UTC, microseconds), null when unknown;
* ``TARGET_TIME``: when the target's record changed, null when unknown or no target record;
* ``AGREES``: the target holds this version (the key is there and every mapped field agrees).

Definitions (docs/figures.md says the same in words):

* reflected: ``AGREES`` and ``TARGET_TIME >= SOURCE_TIME - skew``;
  lag = ``max(0, TARGET_TIME - SOURCE_TIME)`` in seconds.
* decided: ``SOURCE_TIME < until`` where ``until = now - target - skew``: a record changed that
  long ago is either reflected or late; newer ones may still be on their way.
* counted (good/total): decided records with ``SOURCE_TIME >= counted_from`` (when given), so
  consecutive measurements count each change once. total = counted records; good = counted
  records that are reflected with a lag meeting the target (the criterion's comparator).
* late now: read records, not reflected, changed before ``until``.
* pending: read records, not reflected, changed at or after ``until`` (neither good nor total).
* unmeasured: read records without a source change time (neither good nor total).
* percentiles: nearest rank over the lags of counted reflected records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from planner.models.base import Comparator

if TYPE_CHECKING:
    import polars as pl

# polars loads when a measurement folds its first key range, not with the pages that only
# read a criterion's target (target_seconds, default_every_minutes).

SOURCE_TIME = "__source_time"
TARGET_TIME = "__target_time"
AGREES = "__agrees"
MAX_EXAMPLES = 10
PERCENTILES = (50, 95, 99)


def utc_us() -> pl.DataType:
    """Instants as UTC microseconds, the one time type of every measurement."""
    import polars as pl

    return pl.Datetime("us", "UTC")


def utc_times(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A change-time column as UTC datetimes with microseconds.

    Naive datetimes are taken as UTC (SQL sessions are opened in UTC); text is read as ISO
    8601 with or without an offset (``Z``, ``+02:00``, ``-0130``, ``+02``); a date is its midnight;
    numbers are Unix seconds. Anything unreadable is null (an unmeasured record).
    """
    import polars as pl

    utc = utc_us()
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return expr.dt.convert_time_zone("UTC").cast(utc)
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        return (expr.cast(pl.Float64) * 1_000_000).round(0).cast(pl.Int64).cast(utc)
    if dtype in (pl.String, pl.Null) or isinstance(dtype, pl.Categorical):
        text = (
            expr.cast(pl.String)
            .str.strip_chars()
            .str.replace(r"[Zz]$", "+00:00")
            .str.replace("T", " ", literal=True)
            # An offset of whole hours ('+02', as PostgreSQL prints it) and a time without
            # seconds before an offset ('10:00+02:00') are ISO 8601 too.
            .str.replace(r"(:\d{2}(?:\.\d+)?\s*[+-]\d{2})$", "${1}:00")
            .str.replace(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2})([+-])", "${1}:00${2}")
        )
        return pl.coalesce(
            text.str.to_datetime(
                "%Y-%m-%d %H:%M:%S%.f%z", strict=False, time_zone="UTC", time_unit="us"
            ),
            text.str.to_datetime(
                "%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"
            ).dt.replace_time_zone("UTC"),
            text.str.to_datetime(
                "%Y-%m-%d %H:%M", strict=False, time_unit="us"
            ).dt.replace_time_zone("UTC"),
            text.str.to_date("%Y-%m-%d", strict=False)
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC"),
        )
    return pl.lit(None, utc)


@dataclass(frozen=True)
class Window:
    """What one measurement counts: the target, the allowance and the counted interval."""

    now: datetime
    target_seconds: float
    comparator: str = Comparator.LTE
    skew_seconds: float = 0
    counted_from: datetime | None = None

    @property
    def until(self) -> datetime:
        return self.now - timedelta(seconds=self.target_seconds + self.skew_seconds)


@dataclass
class FreshnessResult:
    good: int
    total: int
    pending: int
    late_now: int
    unmeasured: int
    read: int
    lag_p50: float | None
    lag_p95: float | None
    lag_p99: float | None
    lag_max: float | None
    late_examples: list[dict[str, Any]]
    counted_from: datetime | None
    counted_until: datetime
    # The source change time of the oldest record late now: the next read starts there at the
    # latest, so a record stays late until the target shows it.
    oldest_late: datetime | None = None

    @property
    def share_within_pct(self) -> float | None:
        return None if not self.total else 100.0 * self.good / self.total


def nearest_rank(sorted_values: pl.Series, pct: float) -> float | None:
    """The smallest value with at least ``pct`` % of the values at or below it."""
    n = sorted_values.len()
    if not n:
        return None
    return float(sorted_values[max(1, math.ceil(pct / 100 * n)) - 1])


def nearest_rank_counted(values: pl.Series, at_or_below: pl.Series, pct: float) -> float | None:
    """:func:`nearest_rank` of a histogram: ``values`` distinct and ascending, ``at_or_below``
    how many values are at or below each (a running count), so no value is repeated."""
    if not values.len():
        return None
    n = int(at_or_below[-1])
    rank = max(1, math.ceil(pct / 100 * n))
    return float(values[int(at_or_below.search_sorted(rank, side="left"))])


# Comparator.holds as column expressions (the same tolerance for "=").
_MEETS = {
    Comparator.LTE: lambda lag, t: lag <= t,
    Comparator.LT: lambda lag, t: lag < t,
    Comparator.GTE: lambda lag, t: lag >= t,
    Comparator.GT: lambda lag, t: lag > t,
    Comparator.EQ: lambda lag, t: (lag - t).abs() < 1e-9,
    Comparator.NE: lambda lag, t: (lag - t).abs() >= 1e-9,
}


# The per-record facts a tally folds (columns of its frames).
KNOWN = "__known"
REFLECTED = "__reflected"
COUNTED = "__counted"
DECIDED = "__decided"
LAG = "__lag"  # seconds, as a float
COUNT = "__n"  # how many records the row stands for


def seconds(microseconds: pl.Expr) -> pl.Expr:
    """Whole microseconds as seconds: the float nearest the exact quotient.

    polars divides a column by a constant as a multiplication by its reciprocal, one bit off
    for some values, and not for a frame of one row: a lag would depend on how the records
    were chunked. A decimal of scale 6 converts exactly.
    """
    import polars as pl

    exact = microseconds.cast(pl.Decimal(38, 0)) * pl.lit(Decimal("0.000001"))
    return exact.cast(pl.Float64)


def _facts(w: Window) -> dict[str, pl.Expr]:
    """The definitions above, per record, from ``SOURCE_TIME``, ``TARGET_TIME``, ``AGREES``."""
    import polars as pl

    utc = utc_us()
    s, t = pl.col(SOURCE_TIME), pl.col(TARGET_TIME)
    skew = timedelta(seconds=w.skew_seconds)
    until = pl.lit(w.until, utc)
    reflected = pl.col(AGREES).fill_null(False) & t.is_not_null() & (t >= s - skew)
    counted = s < until
    if w.counted_from is not None:
        counted = counted & (s >= pl.lit(w.counted_from, utc))
    return {
        KNOWN: s.is_not_null(),
        REFLECTED: reflected.fill_null(False),
        COUNTED: counted.fill_null(False),
        DECIDED: (s < until).fill_null(False),
        LAG: pl.max_horizontal(seconds((t - s).dt.total_microseconds()), pl.lit(0.0)),
    }


def sql_facts(w: Window, s: str, t: str, agrees: str) -> dict[str, str]:
    """The same definitions in PostgreSQL, for a measurement made inside the database.

    ``s`` and ``t`` are the change times as ``timestamptz`` expressions, ``agrees`` a boolean
    that is never null. ``LAG`` is the lag as an interval (of a measured record: one counted
    and reflected, ``measured``, or ``measured_if`` where null counts as false;
    :func:`sql_lag` of the difference of the times); ``late`` marks the records late now.
    tests/runs/test_freshness_join.py checks them against :func:`_facts` on random tables.
    """

    def instant(value: datetime) -> str:
        return f"CAST('{value.astimezone(UTC).isoformat()}' AS timestamptz)"

    skew = timedelta(seconds=w.skew_seconds) // timedelta(microseconds=1)
    until = instant(w.until)
    known = f"({s}) IS NOT NULL"
    # Without an allowance the target's time is compared as it is (no interval per record).
    earliest = f"({s}) - CAST('{skew} microseconds' AS interval)" if skew else f"({s})"
    reflected = f"COALESCE(({agrees}) AND ({t}) IS NOT NULL AND ({t}) >= {earliest}, false)"
    decided = f"COALESCE(({s}) < {until}, false)"
    counted = decided
    if w.counted_from is not None:
        counted = f"COALESCE(({s}) < {until} AND ({s}) >= {instant(w.counted_from)}, false)"
    measured = f"({known} AND {counted} AND {reflected})"
    # The same records as a condition (a CASE's or a WHERE's): true exactly when measured,
    # false or null otherwise, so no COALESCE is needed, and a target's time at or after the
    # source's already says both are known.
    since = "" if w.counted_from is None else f" AND ({s}) >= {instant(w.counted_from)}"
    measured_if = f"(({s}) < {until}{since} AND ({t}) >= {earliest} AND ({agrees}))"
    return {
        KNOWN: known,
        REFLECTED: reflected,
        COUNTED: counted,
        DECIDED: decided,
        LAG: sql_lag(f"({t}) - ({s})"),
        "measured": measured,
        "measured_if": measured_if,
        "late": f"({known} AND NOT {reflected} AND {decided})",
    }


def sql_lag(difference: str) -> str:
    """The lag from ``difference``, an interval expression ``TARGET_TIME - SOURCE_TIME``: the
    difference, or zero when the target's time is not later (``LAG`` of :func:`_facts`)."""
    zero = "CAST('0' AS interval)"
    return f"CASE WHEN ({difference}) > {zero} THEN ({difference}) ELSE {zero} END"


@dataclass
class FreshnessTally:
    """Folds key ranges into one result; holds each distinct counted lag once, with how many
    records had it, never the rows."""

    window: Window
    key: list[str]
    max_examples: int = MAX_EXAMPLES
    good: int = 0
    total: int = 0
    pending: int = 0
    late_now: int = 0
    oldest_late: datetime | None = None
    unmeasured: int = 0
    read: int = 0
    lags: list[pl.DataFrame] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, part: pl.DataFrame) -> None:
        """Records one by one: the key, ``SOURCE_TIME``, ``TARGET_TIME`` and ``AGREES``."""
        import polars as pl

        facts = part.select(
            *self.key,
            pl.col(SOURCE_TIME),
            pl.col(TARGET_TIME),
            *(expr.alias(name) for name, expr in _facts(self.window).items()),
        )
        self._fold(facts, weighted=False)

    def add_alike(self, facts: pl.DataFrame, *, oldest_late: datetime | None = None) -> None:
        """Records judged inside the database, one row per set of alike records: ``KNOWN``,
        ``REFLECTED``, ``COUNTED``, ``DECIDED``, ``LAG`` and ``COUNT``. Late records among
        them are counted only with ``oldest_late``, the earliest change among them: they
        are no examples, so the examples (the first late records by key) came one by one to
        :meth:`add` before them."""
        self._fold(facts, weighted=True, oldest_late=oldest_late)

    def _fold(
        self, facts: pl.DataFrame, *, weighted: bool, oldest_late: datetime | None = None
    ) -> None:
        """One pass of sums over the per-record facts."""
        import polars as pl

        w = self.window
        known, refl, counted_, decided = (pl.col(c) for c in (KNOWN, REFLECTED, COUNTED, DECIDED))
        measured = known & counted_ & refl
        late = known & ~refl & decided
        meets = _MEETS[Comparator(w.comparator)](pl.col(LAG), float(w.target_seconds))

        def records(condition: pl.Expr) -> pl.Expr:
            return pl.col(COUNT).filter(condition).sum() if weighted else condition.sum()

        counts = facts.select(
            (pl.col(COUNT).sum() if weighted else pl.len()).alias("read"),
            records(known).alias("known"),
            records(known & counted_).alias("total"),
            records(measured & meets).alias("good"),
            records(late).alias("late"),
            records(known & ~refl).alias("waiting"),
        ).row(0, named=True)
        if weighted and counts["late"] and oldest_late is None:
            raise ValueError("late records are folded one by one, or with the earliest change")
        self.read += counts["read"]
        self.unmeasured += counts["read"] - counts["known"]
        self.total += counts["total"]
        self.good += counts["good"]
        self.late_now += counts["late"]
        if counts["late"]:
            first = oldest_late if weighted else facts.filter(late).get_column(SOURCE_TIME).min()
            if self.oldest_late is None or first < self.oldest_late:
                self.oldest_late = first
        self.pending += counts["waiting"] - counts["late"]
        if counts["total"]:
            many = pl.col(COUNT).cast(pl.Int64).sum() if weighted else pl.len().cast(pl.Int64)
            lags = facts.lazy().filter(measured).group_by(LAG).agg(many.alias(COUNT))
            self.lags.append(lags.collect())
            if len(self.lags) > 64:  # many small ranges: folded as they come, kept small
                self.lags = [_histogram(self.lags)]
        room = self.max_examples - len(self.examples)
        if room > 0 and counts["late"] and not weighted:
            for row in facts.filter(late).head(room).iter_rows(named=True):
                self.examples.append(_example(row, self.key, w))

    def result(self) -> FreshnessResult:

        lags = _histogram(self.lags)
        values, at_or_below = lags.get_column(LAG), lags.get_column(COUNT).cum_sum()
        p50, p95, p99 = (nearest_rank_counted(values, at_or_below, p) for p in PERCENTILES)
        return FreshnessResult(
            good=self.good,
            total=self.total,
            pending=self.pending,
            late_now=self.late_now,
            unmeasured=self.unmeasured,
            read=self.read,
            lag_p50=p50,
            lag_p95=p95,
            lag_p99=p99,
            lag_max=float(values[-1]) if values.len() else None,
            late_examples=self.examples,
            counted_from=self.window.counted_from,
            counted_until=self.window.until,
            oldest_late=self.oldest_late,
        )


def _histogram(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Each distinct lag once with its count, ascending."""
    import polars as pl

    if not parts:
        return pl.DataFrame({LAG: [], COUNT: []}, schema={LAG: pl.Float64, COUNT: pl.Int64})
    whole = pl.concat(parts).group_by(LAG).agg(pl.col(COUNT).sum())
    return whole.sort(LAG)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _example(row: dict[str, Any], key: list[str], w: Window) -> dict[str, Any]:
    """A late record: its times and how far past its deadline (changed + target) it is now."""
    changed = row[SOURCE_TIME]
    return {
        "key": {k: _plain(row[k]) for k in key},
        "source_changed": _iso(changed),
        "target_changed": _iso(row[TARGET_TIME]),
        "late_by_seconds": round((w.now - changed).total_seconds() - w.target_seconds, 3),
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def target_seconds(target: float, unit: str) -> float | None:
    """A duration target in seconds; None when the unit is not a duration."""
    factor = DURATION_UNITS.get((unit or "").strip().lower())
    if factor is None:
        return None
    # Multiplied as a decimal, then rounded once: 0.2825 h as floats is 1016.9999999999999 s,
    # and a lag of exactly 1017 s would miss a "within" target it meets.
    return float(Decimal(str(target)) * factor)


DURATION_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "secs": 1,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}


def default_every_minutes(target_secs: float) -> int:
    """How often a criterion is measured by default: about a fifth of its target, 1 to 60 min."""
    return int(min(60, max(1, target_secs // 300)))


def every_minutes(criterion) -> int:
    """How often the criterion is measured: its own setting, else derived from its target."""
    if criterion.measure_every_minutes:
        return min(60, max(1, criterion.measure_every_minutes))
    seconds = target_seconds(criterion.target or 0, criterion.unit) or 3600
    return default_every_minutes(seconds)
