"""reconcile(): in-memory diff by key; reconcile_postgres(): same answer, pushed down."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import os
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from planner.runs.reconcile import ReconcileReport, reconcile, reconcile_postgres

# Per process: other test runs on the same server must not drop it under this one.
PG_DB = f"aethon_reconcile_test_{os.getpid()}"


def keys(frame: pl.DataFrame) -> set[tuple[Any, ...]]:
    return set(frame.rows())


def test_missing_extra_and_mismatches() -> None:
    source = pl.DataFrame(
        {"id": [1, 2, 3, 4, 5], "name": ["a", "b", "c", "d", "e"], "qty": [1, 2, 3, 4, 5]}
    )
    target = pl.DataFrame(
        {"id": [2, 3, 4, 6, 7], "name": ["b", "C", "d", "f", "g"], "qty": [2, 3, 40, 6, 7]}
    )
    report = reconcile(source, target, ["id"], ["name", "qty"])
    assert (report.source_count, report.target_count) == (5, 5)
    assert report.matched_count == 3 and report.equal_count == 1 and report.mismatched_count == 2
    assert keys(report.missing_in_target) == {(1,), (5,)}
    assert keys(report.extra_in_target) == {(6,), (7,)}
    assert report.mismatch_counts == {"name": 1, "qty": 1}
    assert report.examples["name"] == [
        {"key": {"id": 3}, "field": "name", "source": "c", "target": "C"}
    ]
    assert report.mismatches_frame().rows() == [(3, "name", "c", "C"), (4, "qty", "4", "40")]
    assert report.mismatched_keys().rows() == [(3,), (4,)]
    assert not report.ok


def test_identical_frames_are_ok() -> None:
    frame = pl.DataFrame({"id": [1, 2], "v": [None, 1.5]})
    report = reconcile(frame, frame, ["id"], ["v"])
    assert report.ok and report.equal_count == 2 and report.mismatches_frame().height == 0
    assert report.mismatches_frame().columns == ["id", "field", "source_value", "target_value"]


def test_composite_key() -> None:
    source = pl.DataFrame({"org": ["a", "a", "b"], "no": [1, 2, 1], "v": [10, 20, 30]})
    target = pl.DataFrame({"org": ["a", "b", "b"], "no": [2, 1, 2], "v": [21, 30, 40]})
    report = reconcile(source, target, ["org", "no"], ["v"])
    assert keys(report.missing_in_target) == {("a", 1)}
    assert keys(report.extra_in_target) == {("b", 2)}
    assert report.mismatches_frame().rows() == [("a", 2, "v", "20", "21")]


def test_nulls() -> None:
    source = pl.DataFrame({"id": [1, 2, 3, 4], "v": [None, "x", None, ""]})
    target = pl.DataFrame({"id": [1, 2, 3, 4], "v": [None, None, "y", None]})
    report = reconcile(source, target, ["id"], ["v"])
    # null == null; null != value; '' != null
    assert report.mismatched_keys().rows() == [(2,), (3,), (4,)]
    assert report.mismatches_frame().filter(pl.col("id") == 4).row(0) == (4, "v", "", None)


def test_null_and_duplicate_keys_counted_not_compared() -> None:
    source = pl.DataFrame({"id": [1, 1, None, 2], "v": ["a", "zzz", "n", "b"]})
    target = pl.DataFrame({"id": [1, 2, 2, None, None], "v": ["a", "b", "other", "x", "y"]})
    report = reconcile(source, target, ["id"], ["v"])
    assert (report.null_keys_source, report.null_keys_target) == (1, 2)
    assert (report.duplicate_rows_source, report.duplicate_rows_target) == (1, 1)
    assert report.ok  # first occurrences are equal
    assert report.source_count == 4 and report.target_count == 5


def test_differing_dtypes_compare_as_normalized_text() -> None:
    source = pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "amount": [decimal.Decimal("10.50"), decimal.Decimal("3"), None, decimal.Decimal("1")],
            "qty": [1.0, 2.5, 3.0, 4.0],
            "day": [dt.date(2024, 1, 2)] * 4,
            "ts": [dt.datetime(2024, 1, 2, 10, 0, tzinfo=dt.UTC)] * 4,
            "flag": [True, False, None, True],
        }
    )
    target = pl.DataFrame(
        {
            "id": ["1", "2", "3", "4"],
            "amount": ["10.5", "3.00", None, "1.01"],
            "qty": [1, 2, 3, 5],
            "day": ["2024-01-02"] * 3 + ["2024-01-03"],
            "ts": [dt.datetime(2024, 1, 2, 10, 0)] * 3 + [dt.datetime(2024, 1, 2, 11, 0)],
            "flag": ["true", "false", None, "True"],
        }
    )
    report = reconcile(source, target, ["id"], ["amount", "qty", "day", "ts", "flag"])
    # Keys are not among the compared fields; numbers meet numbers and datetimes datetimes,
    # and a number held as text is read as a number ("3.00" is 3).
    assert report.compared_as_text == ["day", "flag"]
    assert report.matched_count == 4  # int key 1 matches text key "1"
    assert report.mismatch_counts == {"amount": 1, "qty": 2, "day": 1, "ts": 1, "flag": 1}
    rows = report.mismatches_frame().rows()
    assert ("2", "qty", "2.5", "2") in rows
    assert ("4", "amount", "1.00", "1.01") in rows  # shown as stored, compared trimmed
    assert ("4", "ts", "2024-01-02 10:00:00+00:00", "2024-01-02 11:00:00") in rows
    assert ("4", "flag", "true", "True") in rows


def test_same_dtype_compares_natively() -> None:
    nan = float("nan")
    source = pl.DataFrame({"id": [1, 2, 3], "x": [nan, 0.1 + 0.2, 1.0]})
    target = pl.DataFrame({"id": [1, 2, 3], "x": [nan, 0.3, 1.0]})
    report = reconcile(source, target, ["id"], ["x"])
    assert report.mismatched_keys().rows() == [(2,)]  # NaN == NaN, float noise is a difference
    assert report.mismatches_frame().row(0)[2:] == ("0.30000000000000004", "0.3")


def test_examples_capped_but_full_list_available() -> None:
    source = pl.DataFrame({"id": range(100), "v": range(100)})
    target = pl.DataFrame({"id": range(100), "v": [i + (i % 2) for i in range(100)]})
    report = reconcile(source, target, ["id"], ["v"], max_examples=3)
    assert report.mismatch_counts == {"v": 50}
    assert [e["key"]["id"] for e in report.examples["v"]] == [1, 3, 5]
    assert report.mismatches_frame().height == 50


def test_differences_frame_and_summary_are_exportable() -> None:
    source = pl.DataFrame({"id": [1, 2, 3], "v": ["a", "b", "c"], "d": [dt.date(2024, 1, 1)] * 3})
    target = pl.DataFrame({"id": [2, 3, 4], "v": ["b", "x", "d"], "d": [dt.date(2024, 1, 1)] * 3})
    report = reconcile(source, target, ["id"], ["v", "d"])
    diff = report.differences_frame()
    assert diff.columns == ["status", "id", "field", "source_value", "target_value"]
    assert diff.get_column("status").to_list() == [
        "missing_in_target",
        "extra_in_target",
        "mismatch",
    ]
    buf = io.StringIO()
    diff.write_csv(buf)
    assert buf.getvalue().splitlines()[3] == "mismatch,3,v,c,x"
    summary = json.loads(json.dumps(report.summary()))
    assert summary["missing_in_target"] == [{"id": 1}] and summary["mismatched_count"] == 1


def test_keys_only_and_validation() -> None:
    source = pl.DataFrame({"id": [1, 2]})
    target = pl.DataFrame({"id": [2, 3]})
    report = reconcile(source, target, ["id"], ["id"])  # key columns are not fields
    assert report.fields == [] and report.equal_count == 1
    with pytest.raises(ValueError, match="target has no column"):
        reconcile(pl.DataFrame({"id": [1], "v": [1]}), target, ["id"], ["v"])
    with pytest.raises(ValueError, match="key"):
        reconcile(source, target, [], [])


def test_large_frames_are_columnar() -> None:
    n = 200_000
    source = pl.DataFrame({"id": range(n), "v": range(n), "w": ["x"] * n})
    target = source.with_columns(
        pl.when(pl.col("id") % 1000 == 0).then(pl.col("v") + 1).otherwise(pl.col("v")).alias("v")
    ).filter(pl.col("id") % 5000 != 1)
    report = reconcile(source, target, ["id"], ["v", "w"])
    assert report.mismatch_counts == {"v": 200, "w": 0}
    assert report.missing_in_target.height == 40


# ---------------------------------------------------------------- PostgreSQL push-down


@pytest.fixture(scope="module")
def pg() -> Iterator[tuple[Any, Any]]:
    import psycopg

    from tests.connectors import PG_DSN, pg_database

    with pg_database(PG_DB) as name:
        setup = psycopg.connect(f"{PG_DSN} dbname={name}", autocommit=True)
        setup.execute(SETUP_SQL)
        setup.close()
        a = psycopg.connect(f"{PG_DSN} dbname={name}")
        b = psycopg.connect(f"{PG_DSN} dbname={name}")
        try:
            yield a, b
        finally:
            a.close()
            b.close()


SETUP_SQL = """
CREATE SCHEMA s;
CREATE TABLE s.src (id int, code text, amount numeric(10,2), score float8, day date,
                    ts timestamptz, note text);
INSERT INTO s.src SELECT g, 'c' || g, g * 1.5, g / 3.0, date '2024-01-01' + g,
       timestamptz '2024-01-01 00:00+00' + g * interval '1 minute',
       CASE WHEN g % 9 = 0 THEN NULL ELSE 'n' || g END
FROM generate_series(1, 3000) g;
INSERT INTO s.src VALUES (NULL, 'null key', 1, 1, NULL, NULL, NULL);
CREATE TABLE s.dst AS SELECT * FROM s.src WHERE id % 97 <> 0;
INSERT INTO s.dst SELECT g, 'extra', 0, 0, NULL, NULL, NULL FROM generate_series(5001, 5010) g;
INSERT INTO s.dst SELECT * FROM s.src WHERE id = 5;           -- identical duplicate
UPDATE s.dst SET amount = amount + 0.01 WHERE id % 101 = 0;
UPDATE s.dst SET note = '' WHERE id = 9;                        -- NULL vs empty string
UPDATE s.dst SET note = NULL WHERE id = 10;
UPDATE s.dst SET score = score + 1e-12 WHERE id = 11;           -- tiny float change
UPDATE s.dst SET ts = ts + interval '1 microsecond' WHERE id = 12;
UPDATE s.dst SET code = 'c13,x"y' WHERE id = 13;               -- quoting in ROW() text
-- Same data, different column types: compared as normalized text, like in memory.
CREATE TABLE s.dst_types AS SELECT id::bigint AS id, code::varchar(20) AS code,
       amount::text AS amount, score::numeric AS score, day::text AS day, ts, note
FROM s.dst;
UPDATE s.dst_types SET amount = '1.5' WHERE id = 1;             -- '1.50' vs '1.5': equal
UPDATE s.dst_types SET day = '2024-01-02 ' WHERE id = 1;         -- trailing space: differs
-- Composite key pair.
CREATE TABLE s.ca AS
    SELECT (g % 7)::text AS org, g AS no, g * 2 AS v FROM generate_series(1, 700) g;
CREATE TABLE s.cb AS SELECT * FROM s.ca WHERE no % 50 <> 0;
UPDATE s.cb SET v = v + 1 WHERE no % 33 = 0;
INSERT INTO s.cb VALUES ('x', 1, 1);
-- Sparse difference: one changed row; the same null-key row on both sides.
CREATE TABLE s.sa AS SELECT g AS id, g * 3 AS v FROM generate_series(1, 5000) g;
INSERT INTO s.sa VALUES (NULL, 1);
CREATE TABLE s.sb AS SELECT * FROM s.sa;
UPDATE s.sb SET v = 0 WHERE id = 77;
"""


def load(table: str) -> pl.DataFrame:
    from planner.connectors import GuardPolicy, fetch_all, open_connector

    config = {
        "host": "127.0.0.1",
        "database": PG_DB,
        "user": "postgres",
        "schema": "s",
        "table": table,
    }
    policy = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}))
    return fetch_all(open_connector("postgres", config, {}, policy))


def assert_same(pushed: ReconcileReport, memory: ReconcileReport) -> None:
    assert pushed.summary(max_keys=10_000) == memory.summary(max_keys=10_000)
    assert pushed.mismatches_frame().rows() == memory.mismatches_frame().rows()
    assert keys(pushed.missing_in_target) == keys(memory.missing_in_target)
    assert keys(pushed.extra_in_target) == keys(memory.extra_in_target)


FIELDS = ["code", "amount", "score", "day", "ts", "note"]


@pytest.mark.parametrize(
    ("strategy", "row_hash"),
    [
        ("rows", "native"),
        ("rows", "text"),
        ("rows", "md5"),
        ("buckets", "native"),
        ("buckets", "md5"),
    ],
)
def test_postgres_agrees_with_memory(pg: tuple[Any, Any], strategy: str, row_hash: str) -> None:
    a, b = pg
    memory = reconcile(load("src"), load("dst"), ["id"], FIELDS)
    pushed = reconcile_postgres(
        a,
        "s.src",
        b,
        ("s", "dst"),
        ["id"],
        FIELDS,
        strategy=strategy,
        buckets=256,
        row_hash=row_hash,
    )
    assert_same(pushed, memory)
    assert memory.missing_in_target.height == 30 and memory.extra_in_target.height == 10
    assert set(memory.mismatched_keys().get_column("id")) >= {9, 10, 11, 12, 13, 101}
    assert memory.null_keys_source == 1 and memory.duplicate_rows_target == 1


def test_postgres_agrees_with_memory_across_column_types(pg: tuple[Any, Any]) -> None:
    a, b = pg
    memory = reconcile(load("src"), load("dst_types"), ["id"], FIELDS)
    pushed = reconcile_postgres(a, "s.src", b, "s.dst_types", ["id"], FIELDS)
    assert_same(pushed, memory)
    # int and bigint keys join as integers; float8 and numeric compare as numbers, and so
    # does a number held as text.
    assert memory.compared_as_text == ["day"]
    mismatched = memory.mismatches_frame().filter(pl.col("id") == 1)
    # '1.50' vs '1.5' is equal; the padded date differs. (score differs too: numeric
    # keeps 15 digits of the float8 1/3.)
    assert "amount" not in mismatched.get_column("field").to_list()
    assert "day" in mismatched.get_column("field").to_list()


def test_postgres_composite_key_same_connection(pg: tuple[Any, Any]) -> None:
    a, _ = pg
    memory = reconcile(load("ca"), load("cb"), ["org", "no"], ["v"])
    pushed = reconcile_postgres(a, "s.ca", a, "s.cb", ["org", "no"], ["v"])
    assert_same(pushed, memory)
    assert memory.missing_in_target.height == 14 and memory.extra_in_target.height == 1
    a.rollback()


def test_postgres_leaves_connection_usable(pg: tuple[Any, Any]) -> None:
    a, b = pg
    reconcile_postgres(a, "s.ca", b, "s.ca", ["org", "no"], ["v"])
    assert a.execute("SELECT 1").fetchone() == (1,)
    a.rollback()


def test_postgres_buckets_skip_equal_segments(
    pg: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import planner.runs.reconcile as module

    pulled: list[int] = []
    real = module._pull_hashes

    def spy(*args: Any) -> pl.DataFrame:
        frame = real(*args)
        pulled.append(frame.height)
        return frame

    monkeypatch.setattr(module, "_pull_hashes", spy)
    a, b = pg
    memory = reconcile(load("sa"), load("sb"), ["id"], ["v"])
    pushed = reconcile_postgres(a, "s.sa", b, "s.sb", ["id"], ["v"], strategy="buckets", buckets=64)
    assert_same(pushed, memory)
    assert memory.mismatched_keys().rows() == [(77,)] and memory.null_keys_source == 1
    assert max(pulled) < 200  # one bucket of ~80 rows plus the null-key bucket, not 5001


def test_postgres_via_connector_connections(pg: tuple[Any, Any]) -> None:
    """How app code gets connections: the guarded, read-only connector sessions."""
    from planner.connectors import GuardPolicy, open_connector

    policy = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}))
    base = {
        "host": "127.0.0.1",
        "database": PG_DB,
        "user": "postgres",
        "schema": "s",
        "key": "org,no",
    }
    src = open_connector("postgres", {**base, "table": "ca"}, {}, policy)
    dst = open_connector("postgres", {**base, "table": "cb"}, {}, policy)
    with src.connect() as a, dst.connect() as b:
        pushed = reconcile_postgres(a, src.table_ref, b, dst.table_ref, src.key, ["v"])
    assert_same(pushed, reconcile(load("ca"), load("cb"), ["org", "no"], ["v"]))


# ---------------------------------------------------------------- exact comparison, tolerance


def test_equal_values_of_different_types_never_differ() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2024, 3, 1, 10, 15, 30, 123456, tzinfo=dt.UTC)
    source = pl.DataFrame(
        {
            "id": pl.Series([1, 2], dtype=pl.Int32),
            "amount": pl.Series([decimal.Decimal("0.1234567"), decimal.Decimal("5")]).cast(
                pl.Decimal(20, 10)
            ),
            "whole": pl.Series([5, -0], dtype=pl.Int64),
            "tiny": [1e-7, 0.1],
            "at": pl.Series([at, None]),
            "label": ["Zoë — ✓", "東京"],
        }
    )
    target = pl.DataFrame(
        {
            "id": pl.Series([1, 2], dtype=pl.Int64),
            "amount": pl.Series([decimal.Decimal("0.1234567"), decimal.Decimal("5")]).cast(
                pl.Decimal(12, 7)
            ),
            "whole": pl.Series([decimal.Decimal("5.00"), decimal.Decimal("0.00")]),
            "tiny": pl.Series([decimal.Decimal("0.0000001"), decimal.Decimal("0.1")]),
            "at": pl.Series([at.astimezone(paris), None]).dt.cast_time_unit("ns"),
            "label": ["Zoë — ✓", "東京"],
        }
    )
    report = reconcile(source, target, ["id"], ["amount", "whole", "tiny", "at", "label"])
    assert report.matched_count == 2 and report.ok, report.mismatches_frame()
    assert report.compared_as_text == []


def test_every_real_difference_is_reported_with_the_values_as_stored() -> None:
    source = pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "amount": pl.Series(["0.1234567", "383.75", "1", "1"]).cast(pl.Decimal(20, 10)),
            "at": pl.Series([dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)] * 4),
            "label": ["café", "Café", "a", "a "],
        }
    )
    target = pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "amount": pl.Series(["0.1234568", "384.75", "1", "1"]).cast(pl.Decimal(12, 7)),
            "at": [dt.datetime(2024, 1, 1)] * 2 + [dt.datetime(2024, 1, 1, 0, 0, 0, 1)] * 2,
            "label": ["cafe\u0301", "café", "a", "a"],
        }
    )
    report = reconcile(source, target, ["id"], ["amount", "at", "label"])
    # Text is compared exactly: another Unicode form, case and a trailing space all differ.
    assert report.mismatch_counts == {"amount": 2, "at": 2, "label": 3}
    rows = report.mismatches_frame().rows()
    assert (1, "amount", "0.1234567000", "0.1234568") in rows
    assert (2, "amount", "383.7500000000", "384.7500000") in rows
    assert (1, "at", "2024-01-01 00:00:00.000001+00:00", "2024-01-01 00:00:00") in rows


def test_a_1e7_change_differs_at_tolerance_0_and_agrees_within_1e6() -> None:
    from planner.mapping.tolerance import parse_tolerance

    source = pl.DataFrame(
        {"id": [1, 2], "x": pl.Series(["0.1234567", "1"]).cast(pl.Decimal(20, 10))}
    )
    target = pl.DataFrame({"id": [1, 2], "x": [0.1234568, 1.1]})
    exact = reconcile(source, target, ["id"], ["x"])
    assert exact.mismatch_counts == {"x": 2}
    loose = reconcile(source, target, ["id"], ["x"], tolerances={"x": parse_tolerance("1e-6")})
    assert loose.mismatch_counts == {"x": 1}  # 0.1 off is still a difference
    assert loose.mismatches_frame().rows() == [(2, "x", "1.0000000000", "1.1")]
    assert loose.within_tolerance == {"x": 1}
    assert loose.summary()["tolerances"] == {"x": "± 0.000001"}
    relative = reconcile(source, target, ["id"], ["x"], tolerances={"x": parse_tolerance("10%")})
    assert relative.ok


def test_a_duration_tolerance_for_timestamps() -> None:
    from planner.mapping.tolerance import parse_tolerance

    at = dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.UTC)
    source = pl.DataFrame({"id": [1, 2], "at": [at, at]})
    target = pl.DataFrame(
        {"id": [1, 2], "at": [dt.datetime(2024, 1, 1, 10, 0, 1), dt.datetime(2024, 1, 1, 10, 0, 2)]}
    )
    report = reconcile(source, target, ["id"], ["at"], tolerances={"at": parse_tolerance("1s")})
    assert report.mismatched_keys().rows() == [(2,)]


def test_numeric_keys_sort_numerically_even_as_text() -> None:
    ids = ["10", "9", "100", "2", "x", "1"]
    source = pl.DataFrame({"id": ids, "v": [1] * 6})
    target = pl.DataFrame({"id": ["1"], "v": [2]})
    report = reconcile(source, target, ["id"], ["v"])
    assert report.missing_in_target.get_column("id").to_list() == ["2", "9", "10", "100", "x"]
    statuses = report.differences_frame().select("status", "id").rows()
    assert statuses == [
        ("missing_in_target", "2"),
        ("missing_in_target", "9"),
        ("missing_in_target", "10"),
        ("missing_in_target", "100"),
        ("missing_in_target", "x"),
        ("mismatch", "1"),
    ]


def test_integer_keys_of_different_widths_join_and_sort_as_integers() -> None:
    source = pl.DataFrame({"id": pl.Series([10, 2, 1], dtype=pl.Int32), "v": [1, 2, 3]})
    target = pl.DataFrame({"id": pl.Series([1], dtype=pl.Int64), "v": [3]})
    report = reconcile(source, target, ["id"], ["v"])
    assert report.missing_in_target.get_column("id").to_list() == [2, 10]
    assert report.summary()["missing_in_target"] == [{"id": 2}, {"id": 10}]


def test_postgres_applies_the_tolerance_like_memory(pg: tuple[Any, Any]) -> None:
    from planner.mapping.tolerance import parse_tolerance

    a, b = pg
    loose = {"amount": parse_tolerance("0.01")}
    pushed = reconcile_postgres(a, "s.src", b, "s.dst", ["id"], ["amount"], tolerances=loose)
    memory = reconcile(load("src"), load("dst"), ["id"], ["amount"], tolerances=loose)
    assert pushed.mismatch_counts == memory.mismatch_counts == {"amount": 0}
    assert pushed.within_tolerance == memory.within_tolerance
    assert pushed.within_tolerance["amount"] > 0
