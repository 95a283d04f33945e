"""Shared pieces: read-only query check, secret scrubbing, frame building, factory."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import polars as pl
import pytest

from planner.connectors import ConnectorError, GuardPolicy, check_select_query, open_connector
from planner.connectors.base import (
    SchemaTracker,
    frame_from_rows,
    parse_key,
    scrub,
    translate_errors,
)


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("SELECT * FROM t", "postgres"),
        ("select a, b from t where c = 'x; drop table t' -- trailing; comment", "postgres"),
        ("WITH x AS (SELECT 1 AS a) SELECT a FROM x;", "postgres"),
        ("SELECT replace(name, 'a', 'b') FROM t", "mysql"),
        ("SELECT $$update; delete$$ AS s", "postgres"),
        ("SELECT 'it''s' /* delete; */ AS s ;  ", "sqlite"),
        ("SELECT `update` FROM t", "mysql"),
        ('SELECT "delete" FROM t', "postgres"),
        ("SELECT 'a\\' ; ' FROM t", "mysql"),
    ],
)
def test_select_accepted(sql: str, dialect: str) -> None:
    body = check_select_query(sql, dialect)
    assert not body.rstrip().endswith(";")


@pytest.mark.parametrize(
    ("sql", "dialect", "message"),
    [
        ("DELETE FROM t", "postgres", "start with SELECT"),
        ("SELECT 1; DELETE FROM t", "postgres", "single SELECT"),
        ("SELECT 1; SELECT 2", "postgres", "single SELECT"),
        ("SELECT * INTO new_t FROM t", "postgres", "INTO"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "postgres", "DELETE"),
        ("SELECT * FROM t FOR UPDATE", "postgres", "UPDATE"),
        ("SELECT * FROM t INTO OUTFILE '/tmp/x'", "mysql", "INTO"),
        ("SELECT 'unterminated", "postgres", "unterminated"),
        ("SELECT 1 /* open", "postgres", "unterminated"),
        # In PostgreSQL a backslash does not escape a quote: the ';' is outside the string.
        ("SELECT 'a\\' ; DROP TABLE t; --'", "postgres", "single SELECT"),
        # '#' is an operator in PostgreSQL, not a comment that could hide a statement.
        ("SELECT 1 # 2 ; DROP TABLE t", "postgres", "single SELECT"),
        ("SELECT 1 -- x\n; DROP TABLE t", "postgres", "single SELECT"),
        ("REPLACE INTO t VALUES (1)", "mysql", "start with SELECT"),
        ("SELECT 1 FROM t; REPLACE INTO t VALUES (1)", "mysql", "single SELECT"),
        ("", "sqlite", "start with SELECT"),
    ],
)
def test_select_rejected(sql: str, dialect: str, message: str) -> None:
    with pytest.raises(ConnectorError, match=message):
        check_select_query(sql, dialect)


def test_scrub_and_translate_errors() -> None:
    assert (
        scrub("auth failed for pw hunter2!", {"password": "hunter2"}) == "auth failed for pw ***!"
    )
    with (
        pytest.raises(ConnectorError) as info,
        translate_errors("Could not connect", {"password": "hunter2"}),
    ):
        raise RuntimeError("dsn=postgres://u:hunter2@h/db\n  detail")
    assert info.value.message == "Could not connect: dsn=postgres://u:***@h/db detail"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_parse_key() -> None:
    assert parse_key("id") == ["id"]
    assert parse_key("a, b") == ["a", "b"]
    assert parse_key(["a", "b"]) == ["a", "b"]
    assert parse_key(None) == []
    with pytest.raises(ConnectorError):
        parse_key("a,,b")


def test_frame_from_rows_types() -> None:
    u = uuid.uuid4()
    rows = [
        (1, "a", decimal.Decimal("1.50"), dt.date(2024, 1, 2), u, {"x": 1}, b"\x01"),
        (2, None, None, None, None, None, None),
    ]
    frame = frame_from_rows(["id", "s", "d", "day", "u", "j", "b"], rows, {"id": pl.Int32()})
    assert frame.schema["id"] == pl.Int32
    assert frame.schema["d"] == pl.Decimal(38, 2)
    assert frame.schema["day"] == pl.Date
    assert frame.get_column("u").to_list() == [str(u), None]  # UUID objects become text
    assert frame.schema["b"] == pl.Binary
    empty = frame_from_rows(["a", "b"], [], {"a": pl.Int64()})
    assert empty.schema == pl.Schema({"a": pl.Int64, "b": pl.Null})


def test_schema_tracker_keeps_dtype_for_all_null_batch() -> None:
    tracker = SchemaTracker()
    tracker.stabilize(pl.DataFrame({"a": [1, 2]}))
    later = tracker.stabilize(pl.DataFrame({"a": [None, None]}))
    assert later.schema["a"] == pl.Int64


def test_factory_rejects_unknown_kind_and_bad_config() -> None:
    with pytest.raises(ConnectorError, match="Unknown connection kind"):
        open_connector("ftp", {}, {}, GuardPolicy())
    with pytest.raises(ConnectorError, match="either a table name or a query"):
        open_connector("postgres", {"host": "h", "database": "d", "user": "u"}, {}, GuardPolicy())
    with pytest.raises(ConnectorError, match="single SELECT"):
        open_connector(
            "postgres",
            {"host": "h", "database": "d", "user": "u", "query": "select 1; drop table x"},
            {},
            GuardPolicy(),
        )
    with pytest.raises(ConnectorError, match="sslmode"):
        open_connector(
            "postgres",
            {"host": "h", "database": "d", "user": "u", "table": "t", "sslmode": "maybe"},
            {},
            GuardPolicy(),
        )
