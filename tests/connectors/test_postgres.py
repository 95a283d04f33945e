"""PostgreSQL connector against the local server (skipped when it is unreachable)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from planner.connectors import ConnectorError, GuardPolicy, fetch_all, open_connector
from tests.connectors import PG_DSN, loopback_only, pg_database  # noqa: F401 - fixture

DB = "aethon_connector_test"
POLICY = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}))
BASE = {"host": "127.0.0.1", "port": 5432, "database": DB, "user": "postgres"}


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    import psycopg

    with pg_database(DB) as name:
        with psycopg.connect(f"{PG_DSN} dbname={name}", autocommit=True) as conn:
            conn.execute("CREATE SCHEMA crm")
            conn.execute(
                'CREATE TABLE crm."Customer ""VIP""" (id int PRIMARY KEY, name text, '
                "amount numeric(10,2), ratio real, created timestamptz, day date, "
                "ref uuid, doc jsonb, flag boolean)"
            )
            conn.execute(
                'INSERT INTO crm."Customer ""VIP""" SELECT g, '
                "CASE WHEN g % 10 = 0 THEN NULL ELSE 'n' || g END, g * 1.25, g / 4.0, "
                "timestamptz '2024-01-01 00:00+00' + g * interval '1 hour', "
                "date '2024-01-01' + g, md5(g::text)::uuid, jsonb_build_object('g', g), g % 2 = 0 "
                "FROM generate_series(1, 2500) g"
            )
        yield name


def conn(**extra: Any) -> Any:
    config = {**BASE, "schema": "crm", "table": 'Customer "VIP"', "key": "id", **extra}
    if "query" in extra:
        config.pop("table")
    return open_connector("postgres", config, {"password": "not-used"}, POLICY)


def test_test_report(database: str) -> None:
    report = conn().test()
    assert report.ok, report.error
    assert report.fields == [
        "id",
        "name",
        "amount",
        "ratio",
        "created",
        "day",
        "ref",
        "doc",
        "flag",
    ]
    assert report.sample is not None and report.sample["doc"] == '{"g": 1}'
    assert report.to_dict()["ok"] is True


def test_fetch_batches_have_stable_types(database: str) -> None:
    connector = conn()
    batches = list(connector.fetch(batch_size=1000))
    assert [b.height for b in batches] == [1000, 1000, 500]
    assert len({tuple(b.schema.items()) for b in batches}) == 1
    schema = batches[0].schema
    assert schema["id"] == pl.Int32
    assert schema["amount"] == pl.Decimal(10, 2)
    assert schema["ratio"] == pl.Float32
    assert schema["created"] == pl.Datetime("us", "UTC")
    assert schema["day"] == pl.Date
    assert schema["ref"] == pl.String and schema["flag"] == pl.Boolean
    assert connector.count() == 2500
    assert connector.fields()[0] == "id"


def test_query_dataset(database: str) -> None:
    sql = 'SELECT id, name, \'50%\' AS pct FROM crm."Customer ""VIP""" WHERE id <= 3 ORDER BY id;'
    frame = fetch_all(conn(query=sql))
    assert frame.rows() == [(1, "n1", "50%"), (2, "n2", "50%"), (3, "n3", "50%")]
    assert conn(query=sql).count() == 3


def test_sessions_are_read_only(database: str) -> None:
    import psycopg

    with conn().connect() as pg, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        pg.execute("CREATE TABLE crm.evil (x int)")


def test_query_that_writes_is_refused_before_connecting() -> None:
    with pytest.raises(ConnectorError, match="single SELECT"):
        conn(query="SELECT 1; DROP SCHEMA crm CASCADE")


def test_missing_table_and_key(database: str) -> None:
    report = conn(table="nope").test()
    assert not report.ok and "does not exist" in report.error
    report = conn(key="customer_no").test()
    assert not report.ok and "customer_no" in report.error


def test_blocked_hosts_never_dialled() -> None:
    for host in ("10.0.0.1", "169.254.169.254", "localhost"):
        report = open_connector(
            "postgres", {**BASE, "host": host, "table": "t"}, {}, GuardPolicy()
        ).test()
        assert not report.ok and "refused" in report.error, host


def test_bad_password_not_echoed(database: str) -> None:
    report = open_connector(
        "postgres",
        {**BASE, "user": "no_such_role_x", "table": "t"},
        {"password": "s3cr3t-pw"},
        POLICY,
    ).test()
    assert not report.ok and "s3cr3t-pw" not in report.error
    assert report.error.startswith("Could not connect to PostgreSQL")


def test_database_name_cannot_smuggle_connection_options(database: str) -> None:
    """libpq expands a conninfo/URI in dbname only on request; prove we never ask."""
    for name in ("port=1 dbname=postgres", "postgresql://127.0.0.1:1/postgres"):
        report = open_connector(
            "postgres", {**BASE, "database": name, "table": "t"}, {}, POLICY
        ).test()
        assert not report.ok and "does not exist" in report.error and "port 1" not in report.error


@pytest.mark.parametrize("dataset", ["table", "query"])
def test_fetch_ordered_pushes_a_time_filter_down(database: str, dataset: str) -> None:
    from datetime import UTC, datetime, timedelta

    extra = {} if dataset == "table" else {"query": 'SELECT * FROM crm."Customer ""VIP"""'}
    since = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=2400)
    frames = list(conn(**extra).fetch_ordered(["id"], 50, changed_since=("created", since)))
    ids = pl.concat(frames).get_column("id").to_list()
    assert ids == list(range(2400, 2501))  # at or after the instant, in key order
    naive = since.replace(tzinfo=None)  # a naive instant is UTC as well
    assert sum(f.height for f in conn(**extra).fetch_ordered(["id"], changed_since=("day", naive)))
    # A text field cannot be compared as a time in the database: every record is read.
    texts = conn(**extra).fetch_ordered(["id"], changed_since=("name", since))
    assert sum(f.height for f in texts) == 2500
    with pytest.raises(ConnectorError, match="no field nope"):
        list(conn(**extra).fetch_ordered(["id"], changed_since=("nope", since)))


def test_copy_batches_from_libpqs_buffer_equal_psycopgs_and_leave_the_connection_usable(
    database: str,
) -> None:
    import psycopg

    from planner.connectors.postgres import _copy_batches

    statement = (
        "COPY (SELECT g, 'n' || g, timestamptz '2024-01-01 00:00+00' + g * interval '1 s' "
        "FROM generate_series(1, 30000) g) TO STDOUT (FORMAT csv)"
    )
    read = {}
    with psycopg.connect(f"{PG_DSN} dbname={database}") as c:
        for fast in (False, True):
            with c.cursor() as cur, cur.copy(statement) as copy:
                if fast:
                    batches = list(_copy_batches(c, copy, 7000))
                    read[fast] = b"".join(batches)
                else:
                    read[fast] = b"".join(bytes(r) for r in copy)
            assert c.execute("SELECT 1").fetchone() == (1,)
        assert read[True] == read[False] and read[True].count(b"\n") == 30000
        # Whole rows per batch, the last one short.
        assert [b.count(b"\n") for b in batches] == [7000] * 4 + [2000]
        assert all(b.endswith(b"\n") for b in batches)
        # A COPY the server aborts halfway raises its error; the connection is free after it.
        failing = "COPY (SELECT 1 / (20000 - g) FROM generate_series(1, 30000) g) TO STDOUT"
        with (
            pytest.raises(psycopg.errors.DivisionByZero),
            c.cursor() as cur,
            cur.copy(failing) as copy,
        ):
            for _batch in _copy_batches(c, copy, 1000):
                pass
        c.rollback()
        assert c.execute("SELECT 2").fetchone() == (2,)
