"""Key ranges compared inside the databases give what reading every row gives.

The same tables are reconciled twice through :func:`streamed_validation`: once reading every
row (``fetch_rows=0``) and once comparing key-range checksums in SQL and fetching only the
ranges that differ. Figures, violation counts and the differences file must be identical,
on SQLite, PostgreSQL and MySQL/MariaDB, over random tables with NULLs, Unicode, tabs,
mixed-case text keys, compound keys, duplicate keys and NULL keys.
"""

from __future__ import annotations

import uuid

import polars as pl
import psycopg
import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from planner.api.tokens import create_token
from planner.connectors.registry import open_connector
from planner.mapping.engine import CompiledMapping, plan_field
from planner.mapping.specs import spec_of
from planner.runs import service as validation
from planner.runs.pushdown import choose_columns, kinds, source_side, target_side, walk_ranges
from planner.runs.stages import Side, tolerances_of
from planner.runs.streamed import Streamed, streamed_validation
from tests.conftest import client_for
from tests.factories import (
    ConnectionFactory,
    FieldMappingFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)
from tests.runs.conftest import (
    PG,
    POLICY,
    make_side,
    pg_side,
    row,
    sqlite_side,
    sqlite_upload,
)

MYSQL = {"host": "127.0.0.1", "port": 3306, "database": "test", "user": "root"}

TEXTS = ["x", " x ", "X", "\tx", "x\n", "é", "ÉCOLE", "", "active", "inactive", "Active", "ab"]
KEYS = ["a", "A", "b", "B", "é", "ab", "aB", "Z", "z0", "10", "9"]
RULES = [
    "identity",
    "trim",
    "trim | lower",
    "upper",
    'map(active="1", inactive="0", *=keep)',
    'map(active="1", *=reject)',
    'map(x="y", *="other")',
    'default("none")',
    'replace("x", "yy")',
    'concat(a, "-", b)',
    "max_length(2)",
    "reject_if_empty",
]


# ---------------------------------------------------------------- tables per dialect


def mysql_side(role, table, frame: pl.DataFrame, key) -> Side:
    import pymysql

    cols = ", ".join(
        f"`{c}` {'BIGINT' if t.is_integer() else 'VARCHAR(40) COLLATE utf8mb4_general_ci'}"
        for c, t in frame.schema.items()
    )
    conn = pymysql.connect(**MYSQL, charset="utf8mb4", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{table}` ({cols}) CHARACTER SET utf8mb4")
        marks = ", ".join(["%s"] * frame.width)
        cur.executemany(f"INSERT INTO `{table}` VALUES ({marks})", frame.rows())
    conn.close()
    return make_side(role, open_connector("mysql", {**MYSQL, "table": table}, {}, POLICY), key)


# ---------------------------------------------------------------- comparing both ways


def both_ways(source: Side, target: Side, rows, fetch_rows=3):
    outcomes = []
    for n in (0, fetch_rows):
        out = streamed_validation(
            source, target, rows, chunk_rows=4, on_rows=lambda n: None, fetch_rows=n, join=False
        )
        assert isinstance(out, Streamed), out
        outcomes.append(out)
    read, pushed = outcomes
    for out in outcomes:
        out.compared.result.figures.pop("reading")
        # Which fields met a chunk of another dtype (an all-null chunk) depends on the chunks.
        out.compared.result.figures.pop("compared_as_text")
    got, want = pushed.compared.result.figures, read.compared.result.figures
    frame = pushed.compared.report.differences_frame()
    expected = read.compared.report.differences_frame()
    if want["duplicate_rows_source"] or want["duplicate_rows_target"]:
        # Which of a key's rows is compared is the database's choice among equal keys, on
        # either path: only what does not depend on it must agree.
        for name in ("equal_count", "mismatched_count", "mismatch_counts", "ok"):
            got.pop(name), want.pop(name)
        frame = frame.filter(pl.col("status") != "mismatch")
        expected = expected.filter(pl.col("status") != "mismatch")
    assert got == want
    assert frame.to_dicts() == expected.to_dicts()
    for name in ("records", "violations", "by_field"):
        assert pushed.mapped.result.figures[name] == read.mapped.result.figures[name]
    return pushed


def tables(draw, compound: bool):
    n = draw(st.integers(0, 30))
    text = st.one_of(st.none(), st.sampled_from(TEXTS))
    keys = st.one_of(st.sampled_from(KEYS), st.none() if draw(st.booleans()) else st.nothing())
    source = pl.DataFrame(
        {
            "k": [draw(keys) for _ in range(n)],
            **({"n": [draw(st.integers(-2, 2)) for _ in range(n)]} if compound else {}),
            "a": [draw(text) for _ in range(n)],
            "b": [draw(text) for _ in range(n)],
        },
        schema={
            "k": pl.String,
            **({"n": pl.Int64} if compound else {}),
            "a": pl.String,
            "b": pl.String,
        },
    )
    return source


@st.composite
def scenarios(draw):
    compound = draw(st.booleans())
    source = tables(draw, compound)
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
    rows = [row("k", "k")] + ([row("n", "n", target_type="integer")] if compound else [])
    rows += [row("a", "a2", rule, **extra), row("b", "b", "trim")]
    # The target is the engine's own output, then changed here and there, so that most
    # key ranges agree (skipped in SQL) and some differ (fetched).
    plans = [plan_field(spec_of(r)) for r in rows]
    out = CompiledMapping(plans).validate(source, key).output if source.height else None
    target = (
        out.select(*key, "a2", "b").cast({"a2": pl.String, "b": pl.String})
        if out is not None
        else pl.DataFrame(
            schema={**{k: source.schema[k] for k in key}, "a2": pl.String, "b": pl.String}
        )
    )
    if target.height:
        drop = draw(st.lists(st.integers(0, target.height - 1), max_size=3))
        change = draw(st.lists(st.integers(0, target.height - 1), max_size=3))
        target = target.with_row_index("__i")
        target = (
            target.with_columns(
                pl.when(pl.col("__i").is_in(change))
                .then(pl.lit("changed"))
                .otherwise(pl.col("a2"))
                .alias("a2")
            )
            .filter(~pl.col("__i").is_in(drop))
            .drop("__i")
        )
    extra_rows = draw(st.lists(st.sampled_from(KEYS), max_size=3))
    if extra_rows:
        more = {"k": extra_rows, "a2": ["e"] * len(extra_rows), "b": [None] * len(extra_rows)}
        if compound:
            more["n"] = [7] * len(extra_rows)
        target = pl.concat(
            [target, pl.DataFrame(more, schema=target.schema)], how="vertical_relaxed"
        )
    if not target.height or not source.height:
        # A table needs a first row to tell its column types.
        return None
    return source, target, key, rows


SETTINGS = dict(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@settings(max_examples=40, **SETTINGS)
@given(scenarios())
def test_sqlite_pushdown_agrees_with_reading_every_row(scenario):
    if scenario is None:
        return
    source, target, key, rows = scenario
    both_ways(
        sqlite_side("source", "src", source, key), sqlite_side("target", "dst", target, key), rows
    )


def test_an_identity_column_null_throughout_a_chunk_still_gets_its_default():
    """A chunk where the column is null in every row is read without a type; the row's
    null default must still be what is compared, as when the table is read whole."""
    blank = [None] * 10
    source = pl.DataFrame(
        {
            "k": ["a", "a", None, None, "a", None, None, None, None, "a", None],
            "n": [0, 1, 0, 0, -1, 0, 0, 0, 0, 2, 0],
        }
        | {"a": [*blank, "x"], "b": [*blank, "x"]},
        schema={"k": pl.String, "n": pl.Int64, "a": pl.String, "b": pl.String},
    )
    target = source.rename({"a": "a2"}).with_columns(
        pl.when(pl.col("a2").is_null()).then(pl.lit("d")).otherwise(pl.col("a2")).alias("a2")
    )
    rows = [
        row("k", "k"),
        row("n", "n", target_type="integer"),
        row("a", "a2", null_rule="default", null_default="d"),
        row("b", "b", "trim"),
    ]
    key = ["k", "n"]
    pushed = both_ways(
        sqlite_side("source", "src", source, key), sqlite_side("target", "dst", target, key), rows
    )
    figures = pushed.compared.result.figures
    assert (figures["matched_count"], figures["equal_count"], figures["mismatched_count"]) == (
        4,
        4,
        0,
    )


@settings(max_examples=8, **SETTINGS)
@given(scenarios())
def test_postgres_pushdown_agrees_with_reading_every_row(pg_db, scenario):
    if scenario is None:
        return
    source, target, key, rows = scenario
    tag = uuid.uuid4().hex[:8]
    both_ways(
        pg_side(pg_db, "source", f"s_{tag}", source, key),
        pg_side(pg_db, "target", f"t_{tag}", target, key),
        rows,
    )


@pytest.fixture(scope="module")
def mysql_db():
    pymysql = pytest.importorskip("pymysql")
    try:
        pymysql.connect(**MYSQL).close()
    except pymysql.err.MySQLError as exc:
        pytest.skip(f"MySQL/MariaDB on 127.0.0.1:3306 is unreachable: {exc}")
    made: list[str] = []
    yield made
    conn = pymysql.connect(**MYSQL, autocommit=True)
    with conn.cursor() as cur:
        for table in made:
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
    conn.close()


@settings(max_examples=6, **SETTINGS)
@given(scenarios())
def test_mysql_pushdown_agrees_with_reading_every_row(mysql_db, scenario):
    if scenario is None:
        return
    source, target, key, rows = scenario
    tag = uuid.uuid4().hex[:8]
    mysql_db.extend([f"s_{tag}", f"t_{tag}"])
    both_ways(
        mysql_side("source", f"s_{tag}", source, key),
        mysql_side("target", f"t_{tag}", target, key),
        rows,
    )


# ---------------------------------------------------------------- fixed cases


def people(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": list(range(n)), "name": [f" Name{i} " for i in range(n)]},
        schema={"id": pl.Int64, "name": pl.String},
    )


def test_equal_ranges_are_counted_without_reading_their_rows():
    source = people(200)
    target = source.with_columns(pl.col("name").str.strip_chars().str.to_lowercase())
    target = target.with_columns(
        pl.when(pl.col("id") == 150).then(pl.lit("changed")).otherwise(pl.col("name")).alias("name")
    )
    rows = [row("id", "id", target_type="integer"), row("name", "name", "trim | lower")]
    pushed = both_ways(
        sqlite_side("source", "s", source, ["id"]),
        sqlite_side("target", "t", target, ["id"]),
        rows,
        fetch_rows=20,
    )
    reading = pushed.figures
    assert reading["mode"] == "pushdown", (
        reading.get("pushdown_blocked"),
        reading.get("not_pushed_down"),
    )
    assert reading["pushed_down"] == ["id", "name"]
    assert reading["not_pushed_down"] == {}
    assert reading["rows_skipped"] >= 150  # only the range around id 150 was read
    assert reading["ranges_fetched"] == 2  # that range, and the null-key rows
    assert pushed.compared.result.figures["mismatch_counts"] == {"name": 1}
    assert pushed.compared.result.figures["equal_count"] == 199


def test_a_duplicate_key_split_across_ranges_is_judged_together():
    source = pl.concat([people(60), pl.DataFrame({"id": [30, 30], "name": [" x ", " y "]})])
    target = people(60).with_columns(pl.col("name").str.strip_chars())
    target = pl.concat([target, pl.DataFrame({"id": [30], "name": ["x"]})])
    rows = [row("id", "id", target_type="integer"), row("name", "name", "trim")]
    pushed = both_ways(
        sqlite_side("source", "s", source, ["id"]),
        sqlite_side("target", "t", target, ["id"]),
        rows,
        fetch_rows=5,
    )
    figures = pushed.compared.result.figures
    assert figures["duplicate_rows_source"] == 2
    assert figures["duplicate_rows_target"] == 1
    assert pushed.figures["rows_skipped"] > 0


def test_rows_sql_may_read_differently_are_always_fetched():
    # SQLite's LOWER leaves 'É' alone; the engine lowers it: the guard sends it to the engine.
    source = pl.DataFrame({"id": [1, 2, 3], "name": ["ÉCOLE", "Abc", "\tx "]})
    target = pl.DataFrame({"id": [1, 2, 3], "name": ["ÉCOLE", "abc", "\tx"]})
    rows = [row("id", "id", target_type="integer"), row("name", "name", "trim | lower")]
    pushed = both_ways(
        sqlite_side("source", "s", source, ["id"]),
        sqlite_side("target", "t", target, ["id"]),
        rows,
        fetch_rows=1,
    )
    assert pushed.compared.result.figures["mismatch_counts"] == {"name": 2}


def test_violations_in_skipped_ranges_are_counted():
    source = pl.DataFrame(
        {"id": list(range(40)), "s": ["toolong" if i % 2 else "ok" for i in range(40)]}
    )
    target = pl.DataFrame(
        {"id": list(range(40)), "s": [None if i % 2 else "ok" for i in range(40)]}
    )
    rows = [row("id", "id", target_type="integer"), row("s", "s", "trim", max_length=3)]
    pushed = both_ways(
        sqlite_side("source", "s", source, ["id"]),
        sqlite_side("target", "t", target, ["id"]),
        rows,
        fetch_rows=4,
    )
    assert pushed.figures["rows_skipped"] == 40
    assert pushed.mapped.result.figures["violations"] == 20


def test_each_column_says_why_it_is_not_pushed_down():
    source = pl.DataFrame(
        {"id": [1, 2], "amount": ["1.5", "2"], "name": ["a", "b"], "tol": [1, 2], "f": [0.5, 1.0]}
    )
    target = pl.DataFrame(
        {"id": [1, 2], "amount": [1.5, 2.0], "name": ["a", "b"], "tol": [1, 2], "f": [0.5, 1.0]}
    )
    rows = [
        row("id", "id", target_type="integer"),
        row("amount", "amount", "number(2)", target_type="decimal"),
        row("name", "name", 'regex("[a-z]")'),
        row("tol", "tol", target_type="integer", tolerance="1"),
        row("f", "f"),
    ]
    s = sqlite_side("source", "s", source, ["id"])
    t = sqlite_side("target", "t", target, ["id"])
    plans = [plan_field(spec_of(r)) for r in rows]
    tolerances, _ = tolerances_of(rows)
    choice = choose_columns(s, t, plans, ["amount", "name", "tol", "f"], tolerances, ["id"])
    assert sorted(choice.pushed) == ["id"]
    assert "number()" in choice.not_pushed["amount"]
    assert "regex()" in choice.not_pushed["name"]
    assert "tolerance" in choice.not_pushed["tol"]
    assert "a float column has no exact SQL text in sqlite" in choice.not_pushed["f"]
    assert "every row is read" in choice.blocker
    out = streamed_validation(s, t, rows, chunk_rows=4, on_rows=lambda n: None, fetch_rows=3)
    assert out.figures["mode"] == "streamed"
    assert out.figures["pushdown_blocked"] == choice.blocker
    assert out.figures["not_pushed_down"]["name"] == choice.not_pushed["name"]


def test_text_and_integer_keys_are_not_mixed_in_key_ranges():
    source = pl.DataFrame({"id": ["1", "2"], "name": ["a", "b"]})
    target = pl.DataFrame({"id": [1, 2], "name": ["a", "b"]})
    rows = [row("id", "id"), row("name", "name")]
    s = sqlite_side("source", "s", source, ["id"])
    t = sqlite_side("target", "t", target, ["id"])
    plans = [plan_field(spec_of(r)) for r in rows]
    choice = choose_columns(s, t, plans, ["name"], {}, ["id"])
    assert "key ranges need text or integer keys of one kind" in choice.blocker


def checksum_of(side: Side, rows, compared, order):
    plans = [plan_field(spec_of(r)) for r in rows]
    choice = choose_columns(side, side, plans, compared, {}, order)
    with side.connector.statements() as run:
        s = source_side(run, side.connector.dialect, side, order, choice, plans, compared)
        t = target_side(run, side.connector.dialect, side, compared)
        return s.checksum(None, None), t.checksum(None, None)


def test_identical_data_gives_identical_checksums_in_every_database(pg_db, mysql_db):
    frame = pl.DataFrame(
        {
            "k": ["a", "B", "é", "東京", "x y"],
            "n": [1, -2, 3, 2**40, 0],
            "t": ["Zoe", None, "", "  pad  ", "tab x"],
        }
    )
    rows = [row("k", "k"), row("n", "n", target_type="integer"), row("t", "t", "trim | upper")]
    tag = uuid.uuid4().hex[:8]
    mysql_db.append(f"c_{tag}")
    sides = [
        sqlite_side("source", "c", frame, ["k"]),
        pg_side(pg_db, "source", f"c_{tag}", frame, ["k"]),
        mysql_side("source", f"c_{tag}", frame, ["k"]),
    ]
    figures = [checksum_of(s, rows, ["n", "t"], ["k"]) for s in sides]
    assert figures[0] == figures[1] == figures[2]
    assert figures[0][0].rows == 5 and figures[0][0].guarded == 0


def test_walk_bisects_only_where_ranges_differ():
    source = people(1000)
    target = source.with_columns(
        pl.when(pl.col("id") == 777).then(pl.lit("x")).otherwise(pl.col("name")).alias("name")
    )
    rows = [row("id", "id", target_type="integer"), row("name", "name")]
    s = sqlite_side("source", "s", source, ["id"])
    t = sqlite_side("target", "t", target, ["id"])
    plans = [plan_field(spec_of(r)) for r in rows]
    choice = choose_columns(s, t, plans, ["name"], {}, ["id"])
    with s.connector.statements() as s_run, t.connector.statements() as t_run:
        walk = walk_ranges(
            source_side(s_run, "sqlite", s, ["id"], choice, plans, ["name"]),
            target_side(t_run, "sqlite", t, ["name"]),
            fetch_rows=10,
        )
    assert walk.rows_skipped >= 990
    assert len(walk.fetch) == 2  # the range holding 777, then the null keys
    assert "777" not in walk.fetch[0] or ">=" in walk.fetch[0]
    assert kinds(s) == {"id": "integer", "name": "string"}


# ---------------------------------------------------------------- a user's run


def test_a_run_through_the_api_reports_the_pushed_down_columns_on_page_and_api(
    db, settings, tmp_path, monkeypatch
):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.AETHON_RUN_CHUNK_ROWS = 10
    settings.AETHON_RUN_FETCH_ROWS = 10
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    source = people(100).with_columns(pl.lit("1.5").alias("amount"))
    target = source.with_columns(
        pl.col("name").str.strip_chars(), pl.lit(1.5).alias("amount")
    ).filter(pl.col("id") != 42)
    project = ProjectFactory()
    systems = [SystemFactory(project=project, name=n) for n in ("CRM", "Billing")]
    for system, table, frame in zip(systems, ("crm", "billing"), (source, target), strict=True):
        SystemEndpointFactory(system=system, **sqlite_upload(table, frame))
    connection = ConnectionFactory(project=project, source=systems[0], target=systems[1])
    for i, (field, rule, kind) in enumerate(
        [("id", "identity", "integer"), ("name", "trim", "string")]
    ):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=field,
            target_field=field,
            source_type=kind,
            target_type=kind,
            rule=rule,
            null_rule="skip",
        )
    _token, raw = create_token(project.owner, "pushdown")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    client = Client()
    started = client.post(f"/api/projects/{project.pk}/connections/{connection.pk}/runs", **headers)
    assert started.status_code == 202, started.content
    run_id = started.json()["id"]
    validation.execute_run(run_id, heartbeat=False)
    results = client.get(f"/api/projects/{project.pk}/runs/{run_id}/results", **headers).json()
    rec = next(s for s in results["stages"] if s["name"] == "reconciliation")["figures"]
    assert rec["missing_in_target"] == [{"id": 42}]
    assert rec["equal_count"] == 99
    assert rec["reading"]["mode"] == "pushdown"
    assert rec["reading"]["pushed_down"] == ["id", "name"]
    assert rec["reading"]["rows_skipped"] >= 80
    html = (
        client_for(project.owner)
        .get(reverse("planner:run_show", args=[project.pk, run_id]))
        .content.decode()
    )
    assert "Compared inside the databases first" in html
    assert "Pushed down to SQL: id, name." in html

    # A column compared on fetched rows: the page says which and why, and every row is read.
    FieldMappingFactory(
        project=project,
        connection=connection,
        position=3,
        source_field="amount",
        target_field="amount",
        source_type="string",
        target_type="decimal",
        rule="number(2)",
        null_rule="skip",
    )
    again = client.post(f"/api/projects/{project.pk}/connections/{connection.pk}/runs", **headers)
    validation.execute_run(again.json()["id"], heartbeat=False)
    html = (
        client_for(project.owner)
        .get(reverse("planner:run_show", args=[project.pk, again.json()["id"]]))
        .content.decode()
    )
    assert "Read in key order in chunks of 10 rows" in html
    assert "the transform number() has no exact SQL form" in html
    assert "Every row was read: some columns are compared on fetched rows" in html


def pg_table(dbname: str, table: str, ddl: str, rows: list[tuple], key: list[str]) -> Side:
    with psycopg.connect(**PG, dbname=dbname, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), sql.SQL(ddl)))  # type: ignore[arg-type]
        with conn.cursor() as cur:
            marks = sql.SQL(", ").join(sql.Placeholder() * len(rows[0]))
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES ({})").format(sql.Identifier(table), marks), rows
            )
    config = {**PG, "database": dbname, "table": table}
    return make_side("source", open_connector("postgres", config, {}, POLICY), key)


TYPED = [
    # id, amount, ratio, at (naive / with zone), day, flag
    (1, "1.50", 0.1, "2024-03-01 10:15:30.123456", "2024-03-01", True),
    (2, "-0.00", 1e-7, "2024-03-01 12:00:00", "1999-12-31", False),
    (3, None, None, None, None, None),
    (4, "383.75", 1.0000000000000002, "2024-02-29 23:59:59.999999", "2024-02-29", True),
]


def test_decimals_floats_timestamps_dates_and_booleans_push_down_on_postgres(pg_db):
    rows = [
        row("id", "id", target_type="integer"),
        row("amount", "amount", target_type="decimal"),
        row("ratio", "ratio"),
        row("at", "at", target_type="datetime"),
        row("day", "day", target_type="date"),
        row("flag", "flag", target_type="boolean"),
    ]
    tag = uuid.uuid4().hex[:8]
    source = pg_table(
        pg_db,
        f"s_{tag}",
        "id int, amount numeric(12,2), ratio float8, at timestamp(6), day date, flag boolean",
        TYPED * 1
        + [(i, "2.00", 0.5, "2024-01-01 00:00:00", "2024-01-01", True) for i in range(5, 60)],
        ["id"],
    )
    # Another scale, a zone-aware timestamp in another zone: equal by the exact rules.
    target_rows = [
        (i, a, r, None if t is None else t + "+00", d, f) for i, a, r, t, d, f in TYPED
    ] + [(i, "2", 0.5, "2024-01-01 01:00:00+01", "2024-01-01", True) for i in range(5, 60)]
    target_rows[1] = (2, "0", 1.0000001e-7, "2024-03-01 12:00:00+00", "1999-12-31", False)
    target = pg_table(
        pg_db,
        f"t_{tag}",
        "id int, amount numeric(14,4), ratio float8, at timestamptz(6), day date, flag boolean",
        target_rows,
        ["id"],
    )
    pushed = both_ways(source, target, rows, fetch_rows=4)
    assert pushed.figures["mode"] == "pushdown", pushed.figures
    assert pushed.figures["pushed_down"] == ["amount", "at", "day", "flag", "id", "ratio"]
    assert pushed.figures["rows_skipped"] >= 40
    assert pushed.compared.result.figures["mismatch_counts"]["ratio"] == 1  # 1e-7 vs 1.0000001e-7
    assert pushed.compared.result.figures["mismatched_count"] == 1


def test_differences_everywhere_stop_the_checksums_and_read_the_ranges():
    source = people(400)
    target = source.with_columns(
        pl.when(pl.col("id") % 5 == 0).then(pl.lit("x")).otherwise(pl.col("name")).alias("name")
    )
    rows = [row("id", "id", target_type="integer"), row("name", "name")]
    pushed = both_ways(
        sqlite_side("source", "s", source, ["id"]),
        sqlite_side("target", "t", target, ["id"]),
        rows,
        fetch_rows=5,
    )
    assert pushed.compared.result.figures["mismatched_count"] == 80
    assert pushed.figures["ranges_read_unchecked"] >= 10
    # Without the rule: 1 + 16 + 256 ranges would be checksummed.
    assert pushed.figures["ranges_checked"] < 60
