from types import SimpleNamespace

import pytest

from planner.mapping.spreadsheet import (
    COLUMNS,
    HEADERS,
    SpreadsheetError,
    export_csv,
    export_xlsx,
    match_columns,
    read_sheet,
    validate_rows,
)

ROW = dict(
    source_field="Status__c",
    source_type="string",
    target_field="status_code",
    target_type="integer",
    max_length=None,
    required=True,
    null_rule="reject",
    null_default="",
    rule="trim | lower | map(active=1, inactive=0)",
    tolerance="1",
    direction="bidirectional",
    frequency="minutes",
    every_minutes=15,
    source_of_truth="source",
    conflict_rule="truth_wins",
    notes='He said "hi", then left',
)


def rows_of(data: bytes, name: str) -> list[dict]:
    sheet = read_sheet(data, name)
    return validate_rows(sheet, match_columns(sheet.headers))


@pytest.mark.parametrize("export, name", [(export_csv, "m.csv"), (export_xlsx, "m.xlsx")])
def test_export_imports_back_unchanged(export, name):
    second = {
        **ROW,
        "source_field": "Email",
        "target_field": "email",
        "max_length": 80,
        "required": False,
        "null_rule": "default",
        "null_default": "n/a",
        "rule": 'regex("^[^@]+@[^@]+$") | max_length(80)',
        "tolerance": "",
        "direction": "one_way",
        "frequency": "daily",
        "every_minutes": None,
        "conflict_rule": "",
        "notes": "",
    }
    rows = [SimpleNamespace(**ROW), SimpleNamespace(**second)]
    assert rows_of(export(rows), name) == [ROW, second]


def test_headers_are_matched_by_common_names_in_any_order():
    csv = b"To;From;Transform;Mandatory;Max length\nemail;Email;trim;yes;80\n"
    rows = rows_of(csv, "x.csv")
    assert rows[0]["source_field"] == "Email" and rows[0]["target_field"] == "email"
    assert rows[0]["required"] is True and rows[0]["max_length"] == 80
    assert rows[0]["direction"] == "one_way"  # defaults for missing columns


def test_wrong_encoding_names_the_line():
    data = "Source field,Target field\nStatus,état\n".encode("latin-1")
    with pytest.raises(SpreadsheetError) as err:
        read_sheet(data, "m.csv")
    assert str(err.value.problems[0]).startswith("row 2: The file is not UTF-8 text (byte 0xe9)")


def test_a_row_wider_than_the_header_names_its_row_instead_of_losing_cells():
    csv = (
        b"Source field,Target field,Notes\n"
        b"status,status_code,kept as is\n"
        b"email,email,first part, second part\n"
        b"name,name,,,\n"
    )
    with pytest.raises(SpreadsheetError) as err:
        read_sheet(csv, "m.csv")
    assert [str(p) for p in err.value.problems] == [
        "row 3: this row has 4 cells but the first row names 3 columns; a cell with a comma"
        " (or the file's delimiter) must be quoted."
    ]
    quoted = b'Source field,Target field,Notes\nemail,email,"first part, second part",,\n'
    assert read_sheet(quoted, "m.csv").rows == [(2, ["email", "email", "first part, second part"])]
    # A workbook's cells beside the table are notes, as under a blank header: not refused.
    import io

    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["Source field", "Target field"])
    book.active.append(["email", "email", None, "checked with finance"])
    out = io.BytesIO()
    book.save(out)
    assert read_sheet(out.getvalue(), "m.xlsx").rows == [(2, ["email", "email"])]


def test_missing_header_is_explained():
    with pytest.raises(SpreadsheetError) as err:
        read_sheet(b"a,b\n1,2\n", "m.csv")
    assert "The first row must name the columns" in str(err.value)
    assert "none of 'a', 'b' is a known column" in str(err.value)


def test_every_problem_is_reported_with_row_and_column():
    csv = (
        b"Source field,Target field,Transformation,Target max length,Null rule\n"
        b"status,status_code,trim | lowr,,reject\n"
        b"email,email,trim,ten,sometimes\n"
        b",status_code,trim,,reject\n"
    )
    sheet = read_sheet(csv, "m.csv")
    with pytest.raises(SpreadsheetError) as err:
        validate_rows(sheet, match_columns(sheet.headers))
    text = [str(p) for p in err.value.problems]
    assert (
        "row 2, column 'Transformation': at character 8: unknown transform 'lowr' (did you mean 'lower'?)"
        in text
    )
    assert "row 3, column 'Target max length': 'ten' is not a whole number above 0." in text
    assert (
        "row 3, column 'Null rule': 'sometimes' is not a null rule the importer knows. Write one "
        "of: required, reject, skip, default, default <value>; or choose its meaning when "
        "matching values." in text
    )
    assert (
        "row 4, column 'Source field': This cell is empty; every row needs a source and a target field."
        in text
    )
    assert "row 4, column 'Target field': 'status_code' is already mapped (row 2)." in text


def test_duplicates_against_existing_rows_when_appending():
    sheet = read_sheet(b"Source field,Target field\nx,email\n", "m.csv")
    with pytest.raises(SpreadsheetError) as err:
        validate_rows(sheet, match_columns(sheet.headers), {"email": "already in the mapping"})
    assert "'email' is already mapped (already in the mapping)" in str(err.value)


def test_source_and_target_columns_are_required():
    sheet = read_sheet(b"Source field,Notes\nx,y\n", "m.csv")
    with pytest.raises(SpreadsheetError) as err:
        validate_rows(sheet, match_columns(sheet.headers))
    assert str(err.value.problems[0]) == "column 'Target field': This column is required."


def test_a_broken_xlsx_and_an_empty_file_are_refused():
    with pytest.raises(SpreadsheetError, match="not a readable XLSX"):
        read_sheet(b"PK\x03\x04garbage", "m.xlsx")
    with pytest.raises(SpreadsheetError, match="empty"):
        read_sheet(b"  \n", "m.csv")


def test_canonical_headers_cover_every_column():
    assert len(HEADERS) == len(COLUMNS) == len(set(HEADERS))
