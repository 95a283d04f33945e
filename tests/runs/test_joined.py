"""Two tables of one PostgreSQL database compared by a join give what reading every row gives.

The same tables are reconciled twice through :func:`streamed_validation`: once reading every
row (``join=False``) and once joined inside the database, which sends only the rows that may
differ. Figures, violation counts and the differences file must be identical, over random
tables of many column types with NULLs, Unicode, tabs, mixed-case text keys under an ICU
collation, compound keys, NULL keys and repeated keys (which the join refuses).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import polars as pl
import psycopg
import pytest
from django.db import connection as db
from django.urls import reverse
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg import sql

from planner.connectors.base import ConnectorError
from planner.connectors.postgres import PostgresConnector
from planner.connectors.registry import open_connector
from planner.mapping.engine import CompiledMapping, plan_field
from planner.mapping.specs import spec_of
from planner.models import SystemEndpoint
from planner.runs import service as validation
from planner.runs.joined import _halves, _range
from planner.runs.pushdown import choose_columns
from planner.runs.stages import Side
from planner.runs.streamed import Streamed, streamed_validation
from tests.conftest import client_for
from tests.factories import (
    ConnectionFactory,
    FieldMappingFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)
from tests.runs.conftest import PG, POLICY, make_side, row

TEXTS = ["x", " x ", "X", "\tx", "x\n", "é", "ÉCOLE", "", "active", "inactive", "ab"]
KEYS = ["a", "A", "b", "B", "é", "ab", "aB", "Z", "z0", "10", "9"]
RULES = [
    "identity",
    "trim",
    "trim | lower",
    "upper",
    'map(active="1", inactive="0", *=keep)',
    'map(active="1", *=reject)',
    'default("none")',
    'replace("x", "yy")',
    'concat(a, "-", b)',
    "max_length(2)",
    "reject_if_empty",
]
SQL_TYPES = {
    "k": 'text COLLATE "en-x-icu"',
    "n": "bigint",
    "a": 'text COLLATE "en-x-icu"',
    "a2": "varchar(40)",
    "b": "text",
    "i": "integer",
    "x": "numeric(12,2)",
    "f": "float8",
    "ts": "timestamp",
    "tz": "timestamptz",
    "d": "date",
    "flag": "boolean",
}
TYPED = {  # column -> (target type of its identity mapping row, values)
    "i": ("integer", [0, 1, -7, 2**31 - 1]),
    "x": ("decimal", [Decimal("0.10"), Decimal("-3.00"), Decimal("12.34")]),
    "f": ("string", [0.1, -0.0, 1e-7, float("nan"), 3.0]),
    "ts": ("datetime", [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, 0, 0, 0, 5)]),
    "tz": ("datetime", [dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)]),
    "d": ("date", [dt.date(2020, 2, 29), dt.date(1999, 12, 31)]),
    "flag": ("boolean", [True, False]),
}
SETTINGS = dict(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def pg_side(dbname, role, table, frame: pl.DataFrame, key, types=None, primary=False) -> Side:
    types = {**SQL_TYPES, **(types or {})}
    if frame.schema["k"].is_integer():
        types["k"] = "bigint"
    cols = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types[c])) for c in frame.columns]
    if primary:
        cols.append(
            sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, key)))
        )
    with psycopg.connect(**PG, dbname=dbname, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), sql.SQL(", ").join(cols))
        )
        with conn.cursor() as cur:
            marks = sql.SQL(", ").join(sql.Placeholder() * frame.width)
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES ({})").format(sql.Identifier(table), marks),
                frame.rows(),
            )
    connector = open_connector("postgres", {**PG, "database": dbname, "table": table}, {}, POLICY)
    return make_side(role, connector, key)


def both_ways(source: Side, target: Side, rows, chunk_rows=4) -> tuple[Streamed, Streamed]:
    """(joined, read): the same run both ways, asserted identical."""
    outcomes = []
    for join in (True, False):
        out = streamed_validation(
            source, target, rows, chunk_rows=chunk_rows, on_rows=lambda n: None, join=join
        )
        assert isinstance(out, Streamed), out
        outcomes.append(out)
    joined, read = outcomes
    for out in outcomes:
        out.compared.result.figures.pop("reading")
        # Which fields met a chunk of another dtype (an all-null chunk) depends on the chunks.
        out.compared.result.figures.pop("compared_as_text")
    assert joined.compared.result.figures == read.compared.result.figures
    assert joined.compared.result.examples == read.compared.result.examples
    got = joined.compared.report.differences_frame()
    want = read.compared.report.differences_frame()
    assert got.to_dicts() == want.to_dicts()
    assert joined.mapped.result.figures == read.mapped.result.figures
    # Each (field, reason) keeps its first examples in key order on both paths; how those
    # lists interleave follows the chunks read, which differ.
    assert sorted(joined.mapped.result.examples, key=repr) == sorted(
        read.mapped.result.examples, key=repr
    )
    return joined, read


@st.composite
def scenarios(draw):
    compound = draw(st.booleans())
    text_key = compound or draw(st.booleans())
    n = draw(st.integers(1, 30))
    key_values = (
        st.sampled_from(KEYS) if text_key else st.integers(0, 40).map(lambda v: v)
    ) | st.none()
    text = st.one_of(st.none(), st.sampled_from(TEXTS))
    typed = draw(st.lists(st.sampled_from(sorted(TYPED)), unique=True, max_size=3))
    data = {
        "k": [draw(key_values) for _ in range(n)],
        **({"n": [draw(st.integers(-2, 2)) for _ in range(n)]} if compound else {}),
        "a": [draw(text) for _ in range(n)],
        "b": [draw(text) for _ in range(n)],
    }
    for col in typed:
        values = st.one_of(st.none(), st.sampled_from(TYPED[col][1]))
        data[col] = [draw(values) for _ in range(n)]
        # A first row with a value: a table's column kinds are read from its first rows.
        data[col][0] = TYPED[col][1][0]
    schema = {"k": pl.String if text_key else pl.Int64, "n": pl.Int64}
    source = pl.DataFrame(data, schema_overrides=schema, strict=False)
    key = ["k", "n"] if compound else ["k"]
    rule = draw(st.sampled_from(RULES))
    extra = draw(
        st.sampled_from(
            [
                {},
                {"required": True},
                {"max_length": 3},
                {"null_rule": "default", "null_default": "d"},
            ]
        )
    )
    rows = [row("k", "k", target_type="string" if text_key else "integer")]
    rows += [row("n", "n", target_type="integer")] if compound else []
    rows += [row("a", "a2", rule, **extra), row("b", "b", "trim")]
    rows += [row(c, c, target_type=TYPED[c][0]) for c in typed]
    plans = [plan_field(spec_of(r)) for r in rows]
    out = CompiledMapping(plans).validate(source, key).output
    target = out.select(*key, "a2", "b").cast({"a2": pl.String, "b": pl.String})
    target = target.hstack(source.select(typed))
    target = target.with_row_index("__i")
    drop = draw(st.lists(st.integers(0, n - 1), max_size=3))
    change = draw(st.lists(st.integers(0, n - 1), max_size=3))
    changes = [
        pl.when(pl.col("__i").is_in(change)).then(pl.lit("changed")).otherwise("a2").alias("a2")
    ]
    for col in typed:
        other = draw(st.lists(st.integers(0, n - 1), max_size=2))
        changes.append(pl.when(pl.col("__i").is_in(other)).then(None).otherwise(col).alias(col))
    target = target.with_columns(*changes).filter(~pl.col("__i").is_in(drop)).drop("__i")
    unique = draw(st.booleans())  # with a primary key, no key repeats and none is null
    if unique:
        source = source.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in key))
        source = source.unique(subset=key, keep="first", maintain_order=True)
        target = target.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in key))
        target = target.unique(subset=key, keep="first", maintain_order=True)
    if (
        not source.height
        or not target.height
        or target.select(typed).null_count().row(0).count(target.height)
    ):
        return None  # a table needs a first row with a value to tell its column types
    if any(source[c][0] is None for c in typed) or any(target[c][0] is None for c in typed):
        return None
    return source, target, key, rows, unique


@settings(max_examples=30, **SETTINGS)
@given(scenarios())
def test_a_join_agrees_with_reading_every_row(pg_db, scenario):
    if scenario is None:
        event("no table")
        return
    source, target, key, rows, unique = scenario
    tag = uuid.uuid4().hex[:8]
    joined, _ = both_ways(
        pg_side(pg_db, "source", f"s_{tag}", source, key, primary=unique),
        pg_side(pg_db, "target", f"t_{tag}", target, key, primary=unique),
        rows,
    )
    event(joined.figures["mode"])
    repeats = any(
        frame.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in key))
        .select(key)
        .is_duplicated()
        .any()
        for frame in (source, target)
    )
    if repeats:
        assert joined.figures["mode"] == "streamed"
        assert "repeats" in joined.figures["join_blocked"]
    elif not joined.figures.get("join_blocked"):
        assert joined.figures["mode"] == "joined"


def people(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "k": list(range(n)),
            "a": [f" Name{i} " for i in range(n)],
            "x": [Decimal(i) / 4 for i in range(n)],
            "ts": [dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i) for i in range(n)],
        },
        schema={"k": pl.Int64, "a": pl.String, "x": pl.Decimal(12, 2), "ts": pl.Datetime("us")},
    )


PEOPLE_ROWS = [
    row("k", "k", target_type="integer"),
    row("a", "a2", "trim | upper"),
    row("x", "x", target_type="decimal"),
    row("ts", "ts", target_type="datetime"),
]


def test_equal_rows_are_counted_without_being_sent(pg_db):
    source = people(200)
    target = source.rename({"a": "a2"}).with_columns(
        pl.col("a2").str.strip_chars().str.to_uppercase()
    )
    target = target.with_columns(
        pl.when(pl.col("k") == 150).then(pl.lit("changed")).otherwise("a2").alias("a2"),
        pl.when(pl.col("k") == 20).then(Decimal("1.5")).otherwise("x").alias("x"),
    ).filter(pl.col("k") != 7)
    tag = uuid.uuid4().hex[:8]
    joined, read = both_ways(
        pg_side(pg_db, "source", f"s_{tag}", source, ["k"], primary=True),
        pg_side(pg_db, "target", f"t_{tag}", target, ["k"], primary=True),
        PEOPLE_ROWS,
        chunk_rows=50,
    )
    assert joined.figures["mode"] == "joined"
    assert joined.figures["rows_read"] == [3, 2]  # 150 and 20 on both sides, 7 in the source
    assert joined.figures["rows_equal_unread"] == 197
    figures = joined.compared.result.figures
    assert figures["mismatch_counts"] == {"a2": 1, "x": 1, "ts": 0}
    assert figures["missing_in_target"] == [{"k": 7}]
    assert (figures["source_count"], figures["target_count"], figures["equal_count"]) == (
        200,
        199,
        197,
    )
    assert joined.mapped.result.figures["records"] == 200
    assert read.figures["mode"] == "streamed"


def test_a_repeated_key_without_a_unique_index_is_read_instead(pg_db):
    source = pl.concat([people(20), people(20).filter(pl.col("k") == 3)])
    target = (
        people(20)
        .rename({"a": "a2"})
        .with_columns(pl.col("a2").str.strip_chars().str.to_uppercase())
    )
    tag = uuid.uuid4().hex[:8]
    joined, _ = both_ways(
        pg_side(pg_db, "source", f"s_{tag}", source, ["k"]),
        pg_side(pg_db, "target", f"t_{tag}", target, ["k"]),
        PEOPLE_ROWS,
    )
    assert joined.figures["mode"] == "streamed"
    assert joined.figures["join_blocked"] == (
        "a key value repeats in the source, and a join would pair its rows"
    )
    assert joined.compared.result.figures["duplicate_rows_source"] == 1


def test_without_an_index_a_key_that_does_not_repeat_is_joined(pg_db):
    source = people(30)
    target = source.rename({"a": "a2"}).with_columns(
        pl.col("a2").str.strip_chars().str.to_uppercase()
    )
    tag = uuid.uuid4().hex[:8]
    joined, _ = both_ways(
        pg_side(pg_db, "source", f"s_{tag}", source, ["k"]),
        pg_side(pg_db, "target", f"t_{tag}", target, ["k"]),
        PEOPLE_ROWS,
    )
    assert joined.figures["mode"] == "joined"
    assert joined.figures["rows_read"] == [0, 0]
    assert joined.compared.result.figures["equal_count"] == 30


def test_tolerances_and_other_databases_are_read(pg_db):
    source = people(10)
    target = source.rename({"a": "a2"}).with_columns(
        pl.col("a2").str.strip_chars().str.to_uppercase()
    )
    tag = uuid.uuid4().hex[:8]
    s = pg_side(pg_db, "source", f"s_{tag}", source, ["k"], primary=True)
    t = pg_side(pg_db, "target", f"t_{tag}", target, ["k"], primary=True)
    tolerant = [*PEOPLE_ROWS[:2], row("x", "x", target_type="decimal", tolerance="0.5")]
    out = streamed_validation(s, t, tolerant, chunk_rows=4, on_rows=lambda n: None, join=True)
    assert out.figures["mode"] == "streamed"
    assert "every row is read" in out.figures["join_blocked"]
    elsewhere = open_connector(
        "postgres", {**PG, "database": "postgres", "table": f"t_{tag}"}, {}, POLICY
    )
    assert not s.connector.same_database(elsewhere)
    assert s.connector.same_database(t.connector)
    other_login = open_connector(
        "postgres", {**PG, "database": pg_db, "table": f"t_{tag}"}, {"password": "x"}, POLICY
    )
    assert not s.connector.same_database(other_login)


def test_char_columns_are_not_joined(pg_db):
    source = people(5).select("k", "a")
    target = source.rename({"a": "a2"}).with_columns(pl.col("a2").str.strip_chars())
    tag = uuid.uuid4().hex[:8]
    joined, _ = both_ways(
        pg_side(pg_db, "source", f"s_{tag}", source, ["k"], primary=True),
        pg_side(pg_db, "target", f"t_{tag}", target, ["k"], {"a2": "char(12)"}, primary=True),
        [row("k", "k", target_type="integer"), row("a", "a2", "trim")],
    )
    assert "char(n)" in joined.figures["join_blocked"]
    # char(12) pads: the target's value read is 'Name0       ', the engine's 'Name0'.
    assert joined.compared.result.figures["mismatch_counts"] == {"a2": 5}


def test_a_failing_second_session_leaves_the_run_to_read_every_row(pg_db, monkeypatch):
    real = PostgresConnector.snapshot

    def second_fails(self, shared=None):
        if shared is not None:
            raise ConnectorError("Query failed: no second session")
        return real(self, shared)

    monkeypatch.setattr(PostgresConnector, "snapshot", second_fails)
    source = people(50)
    target = source.rename({"a": "a2"}).with_columns(
        pl.col("a2").str.strip_chars().str.to_uppercase()
    )
    tag = uuid.uuid4().hex[:8]
    joined, _ = both_ways(
        pg_side(pg_db, "source", f"s_{tag}", source, ["k"], primary=True),
        pg_side(pg_db, "target", f"t_{tag}", target.filter(pl.col("k") != 40), ["k"], primary=True),
        PEOPLE_ROWS,
    )
    assert joined.figures["mode"] == "streamed"
    assert joined.figures["join_blocked"] == (
        "the database could not join the tables (Query failed: no second session)"
    )
    assert joined.compared.result.figures["missing_in_target"] == [{"k": 40}]


# ---------------------------------------------------------------- a user's run


@pytest.fixture
def published(monkeypatch, settings, tmp_path):
    if db.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://…)")
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    sent: list[int] = []
    monkeypatch.setattr(validation, "dispatch", lambda run: sent.append(run.pk))
    return sent


def people_run(pg_db, rows=PEOPLE_ROWS):
    """A user's run over people(40) and its target (k=5 changed, k=9 missing), executed."""
    source = people(40)
    target = source.rename({"a": "a2"}).with_columns(
        pl.col("a2").str.strip_chars().str.to_uppercase()
    )
    target = target.with_columns(
        pl.when(pl.col("k") == 5).then(pl.lit("other")).otherwise("a2").alias("a2")
    ).filter(pl.col("k") != 9)
    tag = uuid.uuid4().hex[:8]
    pg_side(pg_db, "source", f"s_{tag}", source, ["k"], primary=True)
    pg_side(pg_db, "target", f"t_{tag}", target, ["k"], primary=True)
    project = ProjectFactory()
    systems = []
    for table in (f"s_{tag}", f"t_{tag}"):
        system = SystemFactory(project=project, name=table)
        SystemEndpointFactory(
            system=system,
            kind=SystemEndpoint.Kind.POSTGRES,
            config={**PG, "database": pg_db},
            dataset=table,
            key_fields="k",
            upload="",
            upload_name="",
        )
        systems.append(system)
    connection = ConnectionFactory(project=project, source=systems[0], target=systems[1])
    for i, r in enumerate(rows):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=r.source_field,
            target_field=r.target_field,
            target_type=r.target_type,
            rule=r.rule,
            null_rule="skip",
            tolerance=getattr(r, "tolerance", ""),
        )
    run = validation.start_validation_run(connection, project.owner)
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    return run


def test_a_run_on_two_tables_of_one_database_is_joined(db, published, pg_db, settings):
    # Big enough to be split into key ranges if it were read: the join takes it whole.
    settings.AETHON_RUN_PARTITION_ROWS = 10
    run = people_run(pg_db)
    project = run.project
    rec = run.stages.get(name="reconciliation").figures
    assert rec["reading"]["mode"] == "joined", rec["reading"].get("join_blocked")
    assert rec["reading"]["rows_equal_unread"] == 38
    assert not run.partitions.exists()
    assert "compared by a join" in rec["reading"]["partitions"]["why"]
    assert rec["missing_in_target"] == [{"k": 9}]
    assert rec["mismatch_counts"] == {"a2": 1, "x": 0, "ts": 0}
    assert run.summary["records"] == 40
    text = run.differences_file.read().decode()
    assert "missing_in_target,9" in text and "mismatch,5,a2" in text
    page = client_for(project.owner).get(reverse("planner:run_show", args=[project.pk, run.pk]))
    assert "Compared by a join inside the database: 38 rows a side were equal" in (
        page.content.decode()
    )


@pytest.fixture
def counted(monkeypatch):
    """The tables a run counted for its progress total, outside the join."""
    seen: list[str] = []
    real = PostgresConnector.count

    def count(self):
        seen.append(self.config.table)
        return real(self)

    monkeypatch.setattr(PostgresConnector, "count", count)
    return seen


def test_a_joined_run_counts_each_table_once_in_the_join(db, published, pg_db, counted):
    run = people_run(pg_db)
    assert run.stages.get(name="reconciliation").figures["reading"]["mode"] == "joined"
    assert counted == []  # the join's own count gives the progress total
    assert (run.records_total, run.records_done) == (40 + 39, 40 + 39)


def test_a_run_the_join_refuses_counts_the_tables_before_reading_them(
    db, published, pg_db, counted
):
    tolerant = [*PEOPLE_ROWS[:2], row("x", "x", target_type="decimal", tolerance="0.5")]
    run = people_run(pg_db, tolerant)
    reading = run.stages.get(name="reconciliation").figures["reading"]
    assert reading["mode"] == "streamed"
    assert "every row is read" in reading["join_blocked"]
    assert len(counted) == 2
    assert (run.records_total, run.records_done) == (40 + 39, 40 + 39)


def test_null_keys_under_a_unique_index_are_joined_with_the_lower_half(pg_db):
    # A unique index, unlike a primary key, lets keys be null: the halves must still read
    # those rows (once), or the counts would not add up and the join would be abandoned.
    source = people(60).with_columns(
        pl.when(pl.col("k").is_in([3, 50])).then(None).otherwise("k").alias("k")
    )
    target = source.rename({"a": "a2"}).with_columns(
        pl.col("a2").str.strip_chars().str.to_uppercase()
    )
    target = target.with_columns(
        pl.when(pl.col("k") == 40).then(pl.lit("other")).otherwise("a2").alias("a2")
    ).filter(pl.col("k").ne_missing(7))
    tag = uuid.uuid4().hex[:8]
    sides = []
    for role, table, frame in (("source", f"s_{tag}", source), ("target", f"t_{tag}", target)):
        sides.append(pg_side(pg_db, role, table, frame, ["k"]))
        with psycopg.connect(**PG, dbname=pg_db, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} (k)").format(sql.Identifier(table)))
    joined, _ = both_ways(*sides, PEOPLE_ROWS, chunk_rows=8)
    assert joined.figures["mode"] == "joined"
    figures = joined.compared.result.figures
    assert (figures["null_keys_source"], figures["null_keys_target"]) == (2, 2)
    assert figures["missing_in_target"] == [{"k": 7}]
    assert figures["mismatch_counts"]["a2"] == 1


def test_the_lower_half_is_a_plain_key_range_when_no_key_is_null(pg_db):
    tag = uuid.uuid4().hex[:8]
    frame = people(30)
    source = pg_side(pg_db, "source", f"s_{tag}", frame, ["k"], primary=True)
    target = pg_side(pg_db, "target", f"t_{tag}", frame.rename({"a": "a2"}), ["k"], primary=True)
    with source.connector.snapshot() as session:
        s_data = session.dataset(source.connector)
        t_data = session.dataset(target.connector)
        indexed = _halves(session, (s_data, "k"), (t_data, "k"), indexed=True)
        unindexed = _halves(session, (s_data, "k"), (t_data, "k"), indexed=False)
    assert indexed is not None and unindexed is not None
    assert (indexed.middle, indexed.nulls, unindexed.nulls) == (14, False, True)
    # An index condition, not a walk over the whole index with a filter.
    assert _range("k", "k", indexed.middle, 0, indexed.nulls) == ('"k" < 14', '"k" < 14')
    assert _range("k", "k", 14, 0, True)[0] == '("k" < 14 OR "k" IS NULL)'
    assert _range("k", "k", 14, 1, True)[0] == '"k" >= 14'


def test_a_decimal_limit_only_a_wide_column_can_reach_is_checked_only_there(pg_db):
    # The engine rejects decimals of 10^18 and more. numeric(12, 2) cannot hold one, so the
    # join does not test every row for it; numeric(30, 2) can, and both paths flag it alike.
    big = Decimal(10**19)
    wide = people(30).with_columns(
        pl.when(pl.col("k") == 4)
        .then(big)
        .otherwise(pl.col("x"))
        .cast(pl.Decimal(30, 2))
        .alias("x")
    )
    choices = {}
    for declared, frame in (("numeric(12,2)", people(30)), ("numeric(30,2)", wide)):
        tag = uuid.uuid4().hex[:8]
        target = frame.rename({"a": "a2"}).with_columns(
            pl.col("a2").str.strip_chars().str.to_uppercase()
        )
        source = pg_side(pg_db, "source", f"s_{tag}", frame, ["k"], {"x": declared}, True)
        target = pg_side(pg_db, "target", f"t_{tag}", target, ["k"], {"x": declared}, True)
        plans = [plan_field(spec_of(r)) for r in PEOPLE_ROWS]
        fields = ["a2", "x", "ts"]
        choice = choose_columns(source, target, plans, fields, {}, ["k"])
        choices[declared] = [reason for reason, _ in choice.pushed["x"].checks]
        joined, _ = both_ways(source, target, PEOPLE_ROWS, chunk_rows=8)
        assert joined.figures["mode"] == "joined"
        by_field = {f["target"]: f["violations"] for f in joined.mapped.result.figures["by_field"]}
        if declared == "numeric(30,2)":
            assert by_field["x"] == {"type_mismatch": 1}
            assert joined.figures["rows_read"][0] >= 1  # the flagged row is sent and mapped
    assert choices == {"numeric(12,2)": [], "numeric(30,2)": ["type_mismatch"]}
