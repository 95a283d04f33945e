"""File (CSV/JSON/NDJSON/XLSX) and SQLite connectors on temporary files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from planner.connectors import BlockedDestination, ConnectorError, GuardPolicy, fetch_all
from planner.connectors import open_connector as open_
from planner.connectors.csv_check import csv_problem

CSV = b'id,name,amount,zip\n1,Ann,10.5,01234\n2,Bob,,02345\n3,"Cy, Jr",7,10001\n'


def policy(root: Path) -> GuardPolicy:
    return GuardPolicy(file_roots=(str(root),))


# ---------------------------------------------------------------- files


def test_csv_from_bytes() -> None:
    conn = open_("file", {"content": CSV, "filename": "x.csv", "key": "id"}, {}, GuardPolicy())
    report = conn.test()
    assert report.ok, report.error
    assert report.fields == ["id", "name", "amount", "zip"]
    # A zip code written with its leading zero is a code: inference keeps it as written.
    assert report.sample == {"id": 1, "name": "Ann", "amount": 10.5, "zip": "01234"}
    frame = fetch_all(conn)
    assert frame.get_column("name").to_list() == ["Ann", "Bob", "Cy, Jr"]
    assert frame.get_column("amount").to_list() == [10.5, None, 7.0]
    assert conn.count() == 3
    assert [b.height for b in conn.fetch(batch_size=2)] == [2, 1]


def test_csv_as_text_keeps_leading_zeros() -> None:
    conn = open_("file", {"content": CSV, "format": "csv", "infer_types": False}, {}, GuardPolicy())
    assert fetch_all(conn).get_column("zip").to_list() == ["01234", "02345", "10001"]


def test_csv_semicolon_and_latin1() -> None:
    data = "id;city\n1;Zürich\n".encode("latin-1")
    config = {"content": data, "format": "csv", "delimiter": ";", "encoding": "latin-1"}
    assert fetch_all(open_("file", config, {}, GuardPolicy())).row(0) == (1, "Zürich")


def test_csv_invalid_utf8_reported() -> None:
    report = open_(
        "file", {"content": b"id,city\n1,Z\xfcrich\n", "format": "csv"}, {}, GuardPolicy()
    ).test()
    assert not report.ok
    assert report.error == "The CSV file cannot be read. Line 2, character 4: not valid UTF-8 text."


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"id,name\n1,Ada\n2,Bob,x\n", "Line 3, column 3: 3 fields where the header has 2"),
        (b'id,name\n1,"Ada\n2,Bob\n', "Line 2: a quoted field is never closed"),
        (b'id,name\n1,"A\nda"\n2,"x"y\n', "Line 4: ',' expected after '\"'"),
        (b'id;name\n1;Ada"x\n', "CSV malformed"),  # what only the engine finds: still plain
    ],
)
def test_a_malformed_csv_is_reported_by_line_not_with_engine_options(data, problem) -> None:
    config = {"content": data, "format": "csv", "delimiter": ";" if b";" in data else ","}
    report = open_("file", config, {}, GuardPolicy()).test()
    assert not report.ok and report.error.startswith("The CSV file cannot be read. ")
    assert problem in report.error and "check the delimiter and the quoting" in report.error
    for engine_word in ("infer_schema_length", "schema_overrides", "truncate_ragged", "Schema"):
        assert engine_word not in report.error


def test_the_csv_check_accepts_well_formed_files() -> None:
    assert csv_problem(b'id,name\r\n1,"Ada, Countess"\r\n\r\n2,"multi\nline"\r\n') is None
    assert csv_problem(b"id;name\n1;Ada\n", ";") is None
    assert csv_problem(b"id,name\n1\n") == (
        "Line 2: 1 field where the header has 2; check the delimiter and the quoting."
    )
    assert csv_problem(b"") == "The file is empty: it needs a header row."


def test_csv_from_allowed_path_only(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(CSV)
    assert open_("file", {"path": str(path)}, {}, policy(tmp_path)).count() == 3
    report = open_("file", {"path": str(path)}, {}, GuardPolicy()).test()
    assert not report.ok and "not enabled" in report.error
    with pytest.raises(BlockedDestination):
        open_("file", {"path": "/etc/passwd", "format": "csv"}, {}, policy(tmp_path)).count()


def test_json_with_records_path_and_ndjson() -> None:
    doc = {"data": {"rows": [{"id": 1, "a": {"b": 2}}, {"id": 2, "a": {"b": None}}]}}
    conn = open_(
        "file",
        {"content": json.dumps(doc).encode(), "filename": "x.json", "records_path": "$.data.rows"},
        {},
        GuardPolicy(),
    )
    assert fetch_all(conn).to_dicts() == [{"id": 1, "a.b": 2}, {"id": 2, "a.b": None}]
    nd = b'{"id": 1}\n\n{"id": 2, "x": "y"}\n'
    frame = fetch_all(open_("file", {"content": nd, "filename": "x.ndjson"}, {}, GuardPolicy()))
    assert frame.to_dicts() == [{"id": 1, "x": None}, {"id": 2, "x": "y"}]


def test_xlsx(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    book.active.title = "Ignored"
    sheet = book.create_sheet("Customers")
    sheet.append(["id", "name", None, "id"])
    sheet.append([1, "Ann", None, "dup"])
    sheet.append([None, None, None, None])
    sheet.append([2, "Bob"])
    path = tmp_path / "c.xlsx"
    book.save(path)
    config = {"content": path.read_bytes(), "filename": "c.xlsx", "sheet": "Customers"}
    frame = fetch_all(open_("file", config, {}, GuardPolicy()))
    assert frame.columns == ["id", "name", "column_3", "id_2"]
    assert frame.rows() == [(1, "Ann", None, "dup"), (2, "Bob", None, None)]
    report = open_("file", {**config, "sheet": "Nope"}, {}, GuardPolicy()).test()
    assert not report.ok and "Sheet 'Nope' not found" in report.error


def test_file_errors() -> None:
    with pytest.raises(ConnectorError, match="Unknown file format"):
        open_("file", {"content": b"x", "filename": "x.pdf"}, {}, GuardPolicy())
    with pytest.raises(ConnectorError, match="either a file path"):
        open_("file", {"format": "csv"}, {}, GuardPolicy())
    report = open_("file", {"content": b"{", "format": "json"}, {}, GuardPolicy()).test()
    assert not report.ok and report.error.startswith("Could not read the JSON file")
    tiny = GuardPolicy(max_file_bytes=10)
    assert (
        "larger than the limit"
        in open_("file", {"content": CSV, "format": "csv"}, {}, tiny).test().error
    )


# ---------------------------------------------------------------- sqlite


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "crm.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE "odd ""name""" (id INTEGER PRIMARY KEY, name TEXT, score REAL)')
        db.executemany(
            'INSERT INTO "odd ""name""" VALUES (?, ?, ?)',
            [(i, f"n{i}", i / 2 if i % 3 else None) for i in range(1, 1001)],
        )
    return path


def test_sqlite_table(sqlite_db: Path) -> None:
    conn = open_(
        "sqlite",
        {"path": str(sqlite_db), "table": 'odd "name"', "key": "id"},
        {},
        policy(sqlite_db.parent),
    )
    report = conn.test()
    assert report.ok, report.error
    assert report.fields == ["id", "name", "score"]
    assert conn.count() == 1000
    batches = list(conn.fetch(batch_size=300))
    assert [b.height for b in batches] == [300, 300, 300, 100]
    assert {b.schema["score"] for b in batches} == {pl.Float64}


def test_sqlite_query_and_uploaded_content(sqlite_db: Path) -> None:
    config = {
        "content": sqlite_db.read_bytes(),
        "query": 'SELECT id, upper(name) AS n FROM "odd ""name""" WHERE id < 3;',
    }
    frame = fetch_all(open_("sqlite", config, {}, GuardPolicy()))
    assert frame.rows() == [(1, "N1"), (2, "N2")]


def test_sqlite_is_read_only(sqlite_db: Path) -> None:
    conn = open_("sqlite", {"path": str(sqlite_db), "table": "x"}, {}, policy(sqlite_db.parent))
    with conn.connect() as db:
        for statement in (
            'DELETE FROM "odd ""name"""',
            "ATTACH DATABASE ':memory:' AS m",
            "PRAGMA writable_schema = 1",
        ):
            with pytest.raises(sqlite3.DatabaseError):
                db.execute(statement)
    with sqlite3.connect(sqlite_db) as db:
        assert db.execute('SELECT count(*) FROM "odd ""name"""').fetchone() == (1000,)


def test_sqlite_missing_table_reported(sqlite_db: Path) -> None:
    report = open_(
        "sqlite", {"path": str(sqlite_db), "table": "nope"}, {}, policy(sqlite_db.parent)
    ).test()
    assert not report.ok and "no such table" in report.error


def test_sqlite_time_filter_reads_iso_text_with_offsets(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    path = tmp_path / "times.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER, changed)")  # no affinity: values as given
        db.executemany(
            "INSERT INTO t VALUES (?, ?)",
            [
                (1, "2026-06-01T11:59:00Z"),
                (2, "2026-06-01 14:00:30+02:00"),  # 12:00:30 UTC
                (3, "2026-06-01 12:01:00"),  # no offset: UTC
                (4, "soon"),
                (5, None),
                (6, "2026-06-01 14:00:30+02"),  # julianday cannot read it: the caller filters
                (7, datetime(2026, 6, 1, 11, 59, tzinfo=UTC).timestamp()),  # Unix seconds
                (8, int(datetime(2026, 6, 1, 12, 0, 1, tzinfo=UTC).timestamp())),
            ],
        )
    conn = open_("sqlite", {"path": str(path), "table": "t", "key": "id"}, {}, policy(tmp_path))
    since = datetime(2026, 6, 1, 12, tzinfo=UTC)
    frames = conn.fetch_ordered(["id"], changed_since=("changed", since))
    # Rows whose time SQLite cannot read (4, 5, 6) are read and left to the caller's filter.
    assert pl.concat(list(frames)).get_column("id").to_list() == [2, 3, 4, 5, 6, 8]


def test_csv_inference_keeps_the_text_of_keys_and_codes_whole_as_in_blocks(tmp_path: Path) -> None:
    data = b"id,ref,code,count,amount\n007,1.0,007,1,10.50\n7,1,12,2,7\n8,2.0,+3,,2.5\n"
    whole = fetch_all(
        open_("file", {"content": data, "format": "csv", "key": "id, ref"}, {}, GuardPolicy())
    )
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    config = {"path": str(path), "format": "csv", "key": "id, ref"}
    streamed = fetch_all(open_("file", config, {}, policy(tmp_path)))
    assert whole.schema == streamed.schema
    assert whole.equals(streamed)
    assert whole["id"].to_list() == ["007", "7", "8"]
    assert whole["ref"].to_list() == ["1.0", "1", "2.0"]
    assert whole["code"].to_list() == ["007", "12", "+3"]
    assert whole.schema["count"] == pl.Int64 and whole.schema["amount"] == pl.Float64
