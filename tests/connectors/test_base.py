"""Shared pieces: secret scrubbing, frame building, factory.

The read-only SQL check is tested with the attacks it stops, in test_read_only_sql.py.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import polars as pl
import pytest

from planner.connectors import ConnectorError, GuardPolicy, open_connector
from planner.connectors.base import (
    SchemaTracker,
    frame_from_rows,
    parse_key,
    scrub,
    translate_errors,
)


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
