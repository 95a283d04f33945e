"""The file connector (uploads read by validation runs) refuses bombs and oversized files before
parsing them: XLSX that expands, sheets of millions of cells, endless lines, deep JSON."""

import json

import pytest

from planner.connectors import ConnectorError, GuardPolicy
from planner.connectors import open_connector as open_
from planner.filesafety import FileLimits
from tests.bombs import HEADER_ROW, huge_inline_string, inline, many_cells, measure, sheet_xml, xlsx

READ = (
    "from planner.connectors import GuardPolicy, open_connector\n---\n"
    "open_connector('file', {'content': data, 'filename': 'x.xlsx'}, {}, GuardPolicy()).frame()"
)


def error_of(content: bytes, filename: str, **config) -> str:
    conn = open_("file", {"content": content, "filename": filename, **config}, {}, GuardPolicy())
    with pytest.raises(ConnectorError) as err:
        conn.frame()
    report = open_("file", {"content": content, "filename": filename, **config}, {}, GuardPolicy())
    assert report.test().error == err.value.message  # "Test connection" says the same
    return err.value.message


@pytest.fixture(scope="module")
def huge_string(tmp_path_factory):
    path = tmp_path_factory.mktemp("bombs") / "huge-string.xlsx"
    path.write_bytes(xlsx(huge_inline_string(500)))
    return path


def test_an_xlsx_bomb_is_refused_in_a_blink_without_memory(huge_string):
    message = "The file expands to 500 MB uncompressed; the limit is 200 MB."
    assert error_of(huge_string.read_bytes(), "x.xlsx") == message
    cost = measure(READ, huge_string)
    assert cost["error"] == message
    assert cost["seconds"] < 5 and cost["grew_mb"] < 100, cost


def test_an_xlsx_of_millions_of_tiny_cells_is_refused_without_parsing_it(tmp_path):
    path = tmp_path / "cells.xlsx"
    path.write_bytes(xlsx(many_cells(1_000_000, 5)))  # 5 million cells, 75 MB of XML
    message = error_of(path.read_bytes(), "x.xlsx")
    assert message.startswith("The part xl/worksheets/sheet1.xml is compressed ")
    assert message.endswith("expanding to 82 MB); the limit is 100 to 1.")
    cost = measure(READ, path)
    assert cost["error"] == message
    assert cost["seconds"] < 5 and cost["grew_mb"] < 100, cost


def test_xlsx_cells_rows_and_columns_follow_the_settings(settings):
    settings.AETHON_FILE_LIMITS = {"max_rows": 3, "max_columns": 2, "max_cells": 4}
    rows = "".join(f'<row r="{r}">{inline(f"A{r}", "a")}</row>' for r in range(2, 5))
    assert error_of(xlsx(sheet_xml(HEADER_ROW + rows)), "x.xlsx") == ("Row 4: the limit is 3 rows.")
    wide = '<row r="2"><c r="C2"><v>1</v></c></row>'
    assert error_of(xlsx(sheet_xml(HEADER_ROW + wide)), "x.xlsx") == (
        "Column 3 (cell C2): the limit is 2 columns."
    )
    # A header of two columns and three one-cell rows: padded, that is 8 cells.
    settings.AETHON_FILE_LIMITS = {"max_rows": 10, "max_columns": 2, "max_cells": 5}
    rows = "".join(f'<row r="{r}">{inline(f"A{r}", "a")}</row>' for r in range(2, 5))
    assert error_of(xlsx(sheet_xml(HEADER_ROW + rows)), "x.xlsx") == (
        "More than 5 cells (2 rows of 2 columns); the limit is 5."
    )


def test_a_sheet_claiming_the_whole_grid_is_read_as_what_it_holds():
    rows = '<row r="2">' + inline("A2", "1") + inline("B2", "ok") + "</row>"
    data = sheet_xml(HEADER_ROW + rows).replace(
        "<sheetData>", '<dimension ref="A1:XFD1048576"/><sheetData>'
    )
    conn = open_("file", {"content": xlsx(data), "filename": "x.xlsx"}, {}, GuardPolicy())
    assert conn.frame().to_dicts() == [{"Source field": "1", "Target field": "ok"}]


def test_a_csv_line_longer_than_the_limit_is_refused():
    data = b"id,name\n1," + b"x" * (2 * 1024 * 1024) + b"\n"
    assert error_of(data, "x.csv") == "Line 2 is 2 MB long; the limit is 1 MB."


def test_csv_rows_and_columns_follow_the_settings(settings):
    settings.AETHON_FILE_LIMITS = {"max_rows": 3, "max_columns": 3}
    assert error_of(b"id,a,b,c\n1,2,3,4\n", "x.csv") == "Row 1 has 4 columns; the limit is 3."
    assert error_of(b"id\n1\n2\n3\n", "x.csv") == "Row 4: the limit is 3 rows."
    ok = open_("file", {"content": b"id\n1\n2\n", "filename": "x.csv"}, {}, GuardPolicy())
    assert ok.frame().height == 2


def test_deep_json_is_refused_with_a_message():
    deep = b"[" + b'{"a":' * 100 + b"1" + b"}" * 100 + b"]"
    assert error_of(deep, "x.json") == "Record 1 nests deeper than 64 levels; the limit is 64."
    deeper = b"[" * 100_000 + b"]" * 100_000
    assert error_of(deeper, "x.json") == (
        "The JSON nests deeper than it can be read; the limit is 64 levels."
    )
    nd = b'{"a": 1}\n' + b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}\n"
    assert error_of(nd, "x.ndjson") == "Line 2 nests deeper than 64 levels; the limit is 64."


def test_json_fields_and_records_follow_the_settings(settings):
    settings.AETHON_FILE_LIMITS = {"max_rows": 2, "max_columns": 3}
    many_fields = json.dumps([{"a": 1, "b": {"c": 2, "d": 3}, "e": 4}]).encode()
    assert error_of(many_fields, "x.json") == (
        "Record 1 brings the fields to more than 3; the limit is 3 columns."
    )
    # Keys of objects inside arrays are not columns: the array is one JSON text.
    listed = json.dumps([{"a": [{"x": 1, "y": 2, "z": 3, "w": 4}]}]).encode()
    conn = open_("file", {"content": listed, "filename": "x.json"}, {}, GuardPolicy())
    assert conn.frame().columns == ["a"]
    assert error_of(b'{"a":1}\n\n{"a":2}\n{"a":3}\n', "x.ndjson") == (
        "Line 4 holds record 3; the limit is 2 rows."
    )


def test_limits_default_without_django_settings():
    assert FileLimits().max_uncompressed_bytes == 200 * 1024 * 1024
