"""The figures of propagation lag, from per-key times: each definition of docs/figures.md."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from planner.metrics import freshness as lag

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def part(rows, key=("id",)):
    """rows: (id, source time, target time, agrees)."""
    return pl.DataFrame(
        {
            key[0]: [r[0] for r in rows],
            lag.SOURCE_TIME: pl.Series([r[1] for r in rows], dtype=lag.utc_us()),
            lag.TARGET_TIME: pl.Series([r[2] for r in rows], dtype=lag.utc_us()),
            lag.AGREES: [r[3] for r in rows],
        }
    )


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def tally(rows, **window):
    t = lag.FreshnessTally(lag.Window(now=NOW, target_seconds=300, **window), ["id"])
    t.add(part(rows))
    return t.result()


def test_reflected_late_pending_and_unmeasured_records():
    result = tally(
        [
            (1, ago(3600), ago(3600 - 10), True),  # lag 10: good
            (2, ago(3600), ago(3600 - 300), True),  # lag exactly the target: good with <=
            (3, ago(3600), ago(3600 - 301), True),  # too slow: total only
            (4, ago(3600), ago(3590), False),  # fields differ: late now
            (5, ago(100), None, False),  # within the target, not there: pending
            (6, ago(100), ago(90), True),  # reflected but not decided yet: not counted
            (7, None, ago(10), True),  # no change time
        ]
    )
    assert (result.good, result.total, result.late_now, result.pending) == (2, 4, 1, 1)
    assert (result.unmeasured, result.read) == (1, 7)
    assert result.lag_max == 301.0
    assert result.share_within_pct == 50.0
    assert [e["key"] for e in result.late_examples] == [{"id": 4}]


def test_a_late_example_says_how_far_past_its_deadline_it_is():
    # Changed 400 s ago with a 5-minute target (and 30 s allowed for clocks): due 100 s ago.
    [example] = tally([(1, ago(400), None, False)], skew_seconds=30).late_examples
    assert example["late_by_seconds"] == 100.0
    assert example["source_changed"] == ago(400).isoformat() and example["target_changed"] is None


@pytest.mark.parametrize(
    ("comparator", "good"), [("<=", 2), ("<", 1), (">=", 1), (">", 0), ("=", 1)]
)
def test_every_comparator_judges_the_lag(comparator, good):
    rows = [(1, ago(3600), ago(3600 - 300), True), (2, ago(3600), ago(3600 - 5), True)]
    assert tally(rows, comparator=comparator).good == good


def test_the_skew_allowance_accepts_a_target_clock_behind_and_delays_the_verdict():
    rows = [
        (1, ago(3600), ago(3620), True),  # 20 s behind: reflected, lag 0
        (2, ago(3600), ago(3640), True),  # 40 s behind: an older version
        (3, ago(320), None, False),  # late without allowance, pending with 30 s of it
    ]
    strict = tally(rows)
    assert (strict.good, strict.total, strict.late_now, strict.pending) == (0, 3, 3, 0)
    allowed = tally(rows, skew_seconds=30)
    assert (allowed.good, allowed.total, allowed.late_now, allowed.pending) == (1, 2, 1, 1)
    assert allowed.lag_max == 0.0
    assert allowed.counted_until == NOW - timedelta(seconds=330)


def test_counted_from_keeps_earlier_records_out_of_good_and_total_but_not_out_of_late():
    rows = [
        (1, ago(1000), ago(990), True),
        (2, ago(1000), None, False),
        (3, ago(400), ago(399), True),
    ]
    result = tally(rows, counted_from=ago(500))
    assert (result.good, result.total, result.late_now) == (1, 1, 1)


def test_percentiles_are_nearest_rank_over_counted_lags():
    rows = [(i, ago(3600), ago(3600 - i), True) for i in range(1, 101)]  # lags 1..100
    result = tally(rows)
    assert (result.lag_p50, result.lag_p95, result.lag_p99, result.lag_max) == (
        50.0,
        95.0,
        99.0,
        100.0,
    )
    assert lag.nearest_rank(pl.Series([7.0]), 99) == 7.0
    assert lag.nearest_rank(pl.Series([], dtype=pl.Float64), 50) is None


def test_percentiles_count_every_record_when_lags_repeat():
    """90 records took 5 s, 9 took 50 s, 1 took 500 s: p50 5, p95 and p99 50, max 500, whether
    the records come one by one or as counts of alike records (from the database)."""
    lags = [5] * 90 + [50] * 9 + [500]
    rows = [(i, ago(3600), ago(3600 - s), True) for i, s in enumerate(lags)]
    expected = (5.0, 50.0, 50.0, 500.0)
    one_by_one = tally(rows)
    assert (one_by_one.lag_p50, one_by_one.lag_p95, one_by_one.lag_p99) == expected[:3]
    assert one_by_one.lag_max == expected[3]
    t = lag.FreshnessTally(lag.Window(now=NOW, target_seconds=300), ["id"])
    for value, n in ((50.0, 9), (5.0, 40), (500.0, 1), (5.0, 50)):  # in no order, 5 s twice
        t.add_alike(
            pl.DataFrame(
                {
                    lag.KNOWN: [True],
                    lag.REFLECTED: [True],
                    lag.COUNTED: [True],
                    lag.DECIDED: [True],
                    lag.LAG: [value],
                    lag.COUNT: [n],
                }
            )
        )
    counted = t.result()
    assert (counted.lag_p50, counted.lag_p95, counted.lag_p99, counted.lag_max) == expected
    assert (counted.total, counted.good) == (one_by_one.total, one_by_one.good) == (100, 99)


def test_late_records_counted_alike_need_their_earliest_change():
    late = {lag.KNOWN: [True], lag.REFLECTED: [False], lag.COUNTED: [True], lag.DECIDED: [True]}
    facts = pl.DataFrame({**late, lag.LAG: [None], lag.COUNT: [3]})
    t = lag.FreshnessTally(lag.Window(now=NOW, target_seconds=300), ["id"])
    with pytest.raises(ValueError, match="earliest change"):
        t.add_alike(facts)
    t.add_alike(facts, oldest_late=ago(7200))
    result = t.result()
    assert (result.late_now, result.total, result.oldest_late) == (3, 3, ago(7200))
    assert result.late_examples == []


def test_nothing_measured_gives_no_share_and_no_percentiles():
    result = tally([(1, None, None, False)])
    assert (result.total, result.share_within_pct, result.lag_p50) == (0, None, None)


def test_key_ranges_add_up_to_the_whole():
    rows = [(i, ago(3600), ago(3600 - i * 7), i % 3 != 0) for i in range(1, 50)]
    whole = tally(rows)
    t = lag.FreshnessTally(lag.Window(now=NOW, target_seconds=300), ["id"])
    for start in range(0, len(rows), 6):
        t.add(part(rows[start : start + 6]))
    split = t.result()
    assert (split.good, split.total, split.late_now, split.lag_p95) == (
        whole.good,
        whole.total,
        whole.late_now,
        whole.lag_p95,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-06-01T12:00:00Z", datetime(2026, 6, 1, 12, tzinfo=UTC)),
        ("2026-06-01 14:00:00.123456+02:00", datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2026-06-01T10:30:00-0130", datetime(2026, 6, 1, 12, tzinfo=UTC)),
        ("2026-06-01 12:00:00", datetime(2026, 6, 1, 12, tzinfo=UTC)),  # no offset: UTC
        ("2026-06-01", datetime(2026, 6, 1, tzinfo=UTC)),
        # as PostgreSQL prints a timestamptz: whole hours of offset are '+02'
        ("2026-06-01 14:00:00.5+02", datetime(2026, 6, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2026-06-01 07:00:00-05", datetime(2026, 6, 1, 12, tzinfo=UTC)),
        ("2026-06-01T14:00+02:00", datetime(2026, 6, 1, 12, tzinfo=UTC)),  # no seconds
        ("2026-06-01T12:00Z", datetime(2026, 6, 1, 12, tzinfo=UTC)),
        ("yesterday", None),
        (None, None),
    ],
)
def test_text_times_are_read_as_utc_instants_to_the_microsecond(text, expected):
    frame = pl.DataFrame({"t": pl.Series([text], dtype=pl.String)})
    assert frame.select(lag.utc_times(pl.col("t"), pl.String)).item() == expected


def test_zoned_naive_and_numeric_times_become_utc():
    zoned = pl.Series([datetime(2026, 6, 1, 14)]).dt.replace_time_zone("Europe/Paris")
    naive = pl.Series([datetime(2026, 6, 1, 12, 0, 0, 5)])
    epoch = pl.Series([NOW.timestamp() + 0.25])
    for series, expected in (
        (zoned, NOW),
        (naive, NOW + timedelta(microseconds=5)),
        (epoch, NOW + timedelta(milliseconds=250)),
    ):
        frame = series.to_frame("t")
        assert frame.select(lag.utc_times(pl.col("t"), series.dtype)).item() == expected


@pytest.mark.parametrize(
    ("target", "unit", "seconds", "every"),
    [
        (5, "minutes", 300, 1),
        (30, "seconds", 30, 1),
        (2, "hours", 7200, 24),
        (1, "h", 3600, 12),
        (90, "secs", 90, 1),
        (2, "hrs", 7200, 24),
        (1, "day", 86_400, 60),
        (2, "Days", 172_800, 60),
    ],
)
def test_duration_targets_and_the_default_schedule(target, unit, seconds, every):
    assert lag.target_seconds(target, unit) == seconds
    assert lag.default_every_minutes(seconds) == every


@pytest.mark.parametrize(
    ("target", "unit", "seconds"),
    [(Decimal("0.2825"), "hours", 1017), (Decimal("0.0700"), "h", 252), (0.07, "hours", 252)],
)
def test_a_fractional_target_is_the_exact_number_of_seconds(target, unit, seconds):
    assert lag.target_seconds(target, unit) == seconds


def test_a_percent_is_not_a_duration():
    assert lag.target_seconds(99, "%") is None
    assert lag.default_every_minutes(86_400 * 7) == 60
