"""MySQL/MariaDB connector against 127.0.0.1:3306 (skipped when unreachable)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from planner.connectors import ConnectorError, GuardPolicy, fetch_all, open_connector
from tests.connectors import loopback_only  # noqa: F401 - fixture

pymysql = pytest.importorskip("pymysql")

POLICY = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}))
BASE = {"host": "127.0.0.1", "port": 3306, "database": "test", "user": "root"}
TABLE = "aethon_connector_test"


@pytest.fixture(scope="module")
def table() -> Iterator[str]:
    try:
        db = pymysql.connect(
            host="127.0.0.1",
            user="root",
            password="",
            database="test",
            connect_timeout=3,
            autocommit=True,
        )
    except pymysql.err.MySQLError as exc:
        pytest.skip(f"MySQL/MariaDB on 127.0.0.1:3306 is unreachable: {exc}")
    with db.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{TABLE}`")
        cur.execute(
            f"CREATE TABLE `{TABLE}` (id INT PRIMARY KEY, name VARCHAR(20), "
            "amount DECIMAL(8,2), seen DATETIME)"
        )
        cur.executemany(
            f"INSERT INTO `{TABLE}` VALUES (%s, %s, %s, %s)",
            [
                (i, f"n{i}" if i % 5 else None, i * 1.5, "2024-01-01 10:00:00")
                for i in range(1, 301)
            ],
        )
    try:
        yield TABLE
    finally:
        with db.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{TABLE}`")
        db.close()


def conn(**extra: Any) -> Any:
    config = {**BASE, "table": TABLE, "key": "id", **extra}
    if "query" in extra:
        config.pop("table")
    return open_connector("mysql", config, {}, POLICY)


def test_table(table: str) -> None:
    connector = conn()
    report = connector.test()
    assert report.ok, report.error
    assert report.fields == ["id", "name", "amount", "seen"]
    assert connector.count() == 300
    assert [b.height for b in connector.fetch(batch_size=128)] == [128, 128, 44]
    frame = fetch_all(connector)
    assert frame.get_column("name").null_count() == 60


def test_query_and_read_only(table: str) -> None:
    frame = fetch_all(conn(query=f"SELECT id, amount FROM `{TABLE}` WHERE id < 3"))
    assert [str(v) for v in frame.get_column("amount").to_list()] == ["1.50", "3.00"]
    with conn().connect() as db, db.cursor() as cur, pytest.raises(pymysql.err.MySQLError):
        cur.execute(f"DELETE FROM `{TABLE}`")
    with pytest.raises(ConnectorError):
        conn(query=f"SELECT * FROM `{TABLE}` INTO OUTFILE '/tmp/x'")


def test_blocked_host() -> None:
    report = open_connector(
        "mysql", {**BASE, "host": "192.168.0.1", "table": "t"}, {}, GuardPolicy()
    ).test()
    assert not report.ok and "private network" in report.error


def test_fetch_ordered_pushes_a_time_filter_down(table: str) -> None:
    from datetime import UTC, datetime

    before = datetime(2024, 1, 1, 9, 59, tzinfo=UTC)
    after = datetime(2024, 1, 1, 10, 0, 0, 1, tzinfo=UTC)
    read = lambda name, since: sum(  # noqa: E731
        f.height for f in conn().fetch_ordered(["id"], changed_since=(name, since))
    )
    assert (read("seen", before), read("seen", after)) == (300, 0)
    assert read("name", after) == 300  # a text field is read whole


def test_float_columns_are_read_at_their_stored_value(table: str) -> None:
    """MariaDB prints FLOAT with six digits; a seventh-digit difference must still be read."""
    import polars as pl

    name = f"{TABLE}_float"
    db = pymysql.connect(host="127.0.0.1", user="root", database="test", autocommit=True)
    with db.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{name}`")
        cur.execute(f"CREATE TABLE `{name}` (id INT PRIMARY KEY, f FLOAT, d DOUBLE)")
        cur.executemany(
            f"INSERT INTO `{name}` VALUES (%s, %s, %s)",
            [(1, 1.0000001, 0.1), (2, 16777216, 2.5), (3, None, None)],
        )
    try:
        want = pl.Series("f", [1.0000001, 16777216.0, None], dtype=pl.Float32)
        for query in (None, f"SELECT id, f, d FROM `{name}`"):
            extra = {"query": query} if query else {"table": name}
            connector = conn(**extra)
            for frame in (
                fetch_all(connector),
                pl.concat(list(connector.fetch_ordered(["id"], batch_size=2))),
            ):
                assert frame.schema["f"] == pl.Float32
                assert frame.get_column("f").to_list() == want.to_list()
                assert frame.get_column("d").to_list() == [0.1, 2.5, None]
    finally:
        with db.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{name}`")
        db.close()
