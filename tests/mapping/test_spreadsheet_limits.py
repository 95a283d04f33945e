"""The mapping importer refuses spreadsheet bombs and oversized sheets before any parser opens
them: quickly, cheaply, and with a message that names the limit."""

import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from planner.api.tokens import create_token
from planner.filesafety import FileLimits
from planner.mapping.spreadsheet import SpreadsheetError, read_sheet
from planner.models import FieldMapping
from tests.bombs import (
    CONTENT_TYPES,
    HEADER_ROW,
    NO_STRINGS,
    huge_inline_string,
    inline,
    many_cells,
    measure,
    sheet_xml,
    xlsx,
)
from tests.conftest import client_for
from tests.factories import ConnectionFactory

READ = "from planner.mapping.spreadsheet import read_sheet\n---\nread_sheet(data, 'm.xlsx')"


def refusal(data: bytes, name: str = "m.xlsx", limits: FileLimits | None = None) -> str:
    with pytest.raises(SpreadsheetError) as err:
        read_sheet(data, name, limits)
    return str(err.value)


@pytest.fixture(scope="module")
def huge_string(tmp_path_factory):
    """1.2 MB of file, 500 MB of 'A' in one inline string."""
    path = tmp_path_factory.mktemp("bombs") / "huge-string.xlsx"
    path.write_bytes(xlsx(huge_inline_string(500)))
    return path


def test_a_huge_inline_string_is_refused_in_a_blink_without_memory(huge_string):
    assert huge_string.stat().st_size < 1_500_000
    message = "The file expands to 500 MB uncompressed; the limit is 50 MB."
    assert refusal(huge_string.read_bytes()) == message
    cost = measure(READ, huge_string)
    assert cost["error"] == message
    assert cost["seconds"] < 5 and cost["grew_mb"] < 100, cost


def test_a_sheet_compressed_far_beyond_any_real_one_is_refused(tmp_path):
    path = tmp_path / "cells.xlsx"
    path.write_bytes(xlsx(many_cells(50_000, 50)))  # 2.5 million cells, 37 MB of XML
    assert path.stat().st_size < 1_500_000
    message = refusal(path.read_bytes())
    assert message.startswith("The part xl/worksheets/sheet1.xml is compressed ")
    assert message.endswith(" expanding to 36 MB); the limit is 100 to 1.")
    cost = measure(READ, path)
    assert cost["error"] == message
    assert cost["seconds"] < 5 and cost["grew_mb"] < 100, cost


def test_millions_of_tiny_cells_stored_uncompressed_stop_at_the_row_limit(tmp_path):
    path = tmp_path / "stored.xlsx"
    # 2 million cells, 30 MB, stored as they are: no compression ratio gives them away.
    path.write_bytes(xlsx(many_cells(400_000, 5), compression=zipfile.ZIP_STORED))
    assert refusal(path.read_bytes()) == "Row 20,001: the limit is 20,000 rows."
    cost = measure(READ, path)
    assert cost["error"] == "Row 20,001: the limit is 20,000 rows."
    assert cost["seconds"] < 5 and cost["grew_mb"] < 100, cost


def test_a_sheet_claiming_the_whole_grid_is_read_as_what_it_holds(tmp_path):
    # Readers pad every row to the columns a sheet's <dimension> claims: one kilobyte of XML
    # would become 1,048,576 rows of 16,384 cells.
    rows = '<row r="2">' + inline("A2", "Status") + inline("B2", "status") + "</row>"
    data = sheet_xml(HEADER_ROW + rows).replace(
        "<sheetData>", '<dimension ref="A1:XFD1048576"/><sheetData>'
    )
    path = tmp_path / "grid.xlsx"
    path.write_bytes(xlsx(data))
    sheet = read_sheet(path.read_bytes(), "m.xlsx")
    assert sheet.rows == [(2, ["Status", "status"])]
    cost = measure(READ, path)
    assert cost["error"] == ""
    assert cost["seconds"] < 5 and cost["grew_mb"] < 100, cost


def test_rows_numbered_far_apart_count_once_but_columns_past_the_limit_are_refused():
    far = '<row r="1048576">' + inline("A1048576", "x") + inline("B1048576", "y") + "</row>"
    sheet = read_sheet(xlsx(sheet_xml(HEADER_ROW + far)), "m.xlsx")
    assert sheet.rows == [(1048576, ["x", "y"])]
    wide = '<row r="2"><c r="XFD2"><v>1</v></c></row>'
    assert refusal(xlsx(sheet_xml(HEADER_ROW + wide))) == (
        "Column 16,384 (cell XFD2): the limit is 100 columns."
    )
    past = '<row r="1048577"><c r="A1048577"><v>1</v></c></row>'
    assert refusal(xlsx(sheet_xml(HEADER_ROW + past))) == (
        "Row 1,048,577 is past the last row an XLSX sheet can have."
    )


def test_a_cell_longer_than_the_limit_is_refused_by_name():
    long = '<row r="2">' + inline("A2", "a") + inline("B2", "b" * 40_000) + "</row>"
    data = xlsx(sheet_xml(HEADER_ROW + long), compression=zipfile.ZIP_STORED)
    assert refusal(data) == "Cell B2 holds more than 32,767 characters; the limit is 32,767."
    strings = NO_STRINGS.replace(' count="0"/>', f"><si><t>{'s' * 40_000}</t></si></sst>")
    shared = '<row r="2"><c r="A2" t="s"><v>0</v></c>' + inline("B2", "b") + "</row>"
    data = xlsx(sheet_xml(HEADER_ROW + shared), strings=strings, compression=zipfile.ZIP_STORED)
    assert refusal(data) == ("String 1 holds more than 32,767 characters; the limit is 32,767.")


def test_too_many_parts_are_refused_before_the_zip_directory_is_read():
    data = xlsx(sheet_xml(HEADER_ROW))
    import io

    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as z:
        for i in range(1_000):
            z.writestr(f"customXml/item{i}.xml", "<a/>")
    assert refusal(out.getvalue()) == "The file holds 1,006 parts; the limit is 1,000."


def test_parts_parsed_whole_are_kept_small():
    styles = b'<styleSheet><cellXfs count="1">' + b"<xf/>" * 4_000_000 + b"</cellXfs></styleSheet>"
    data = xlsx(
        sheet_xml(HEADER_ROW), compression=zipfile.ZIP_STORED, extra={"xl/styles.xml": styles}
    )
    assert refusal(data) == (
        "The part xl/styles.xml expands to 19 MB; parts other than sheets are limited to 16 MB."
    )


def test_a_sheet_also_claimed_as_the_shared_strings_is_checked_as_a_sheet():
    claimed = CONTENT_TYPES.replace("/xl/sharedStrings.xml", "/xl/worksheets/sheet1.xml")
    wide = sheet_xml(HEADER_ROW + '<row r="2"><c r="XFD2"><v>1</v></c></row>')
    assert refusal(xlsx(wide, content_types=claimed)) == (
        "Column 16,384 (cell XFD2): the limit is 100 columns."
    )


def test_entity_expansion_is_refused():
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    )
    data = xlsx(laughs + sheet_xml(HEADER_ROW).split("?>", 1)[1])
    assert refusal(data) == "The part declares a DTD, which spreadsheets never need."


def test_broken_row_numbers_are_a_clear_message_not_a_crash():
    bad = '<row r="two">' + inline("A2", "a") + "</row>"
    assert refusal(xlsx(sheet_xml(HEADER_ROW + bad))) == "Row number 'two' is not a number."
    assert refusal(b"PK\x03\x04 not a zip at all").startswith(
        "The file is not a readable XLSX workbook."
    )


def test_csv_rows_columns_and_cells_have_the_same_limits():
    many = b"Source field,Target field\n" + b"a,b\n" * 20_000
    assert refusal(many, "m.csv") == "Row 20,001: the limit is 20,000 rows."
    assert read_sheet(many[: -len(b"a,b\n")], "m.csv").rows[-1] == (20_000, ["a", "b"])
    wide = b"Source field,Target field" + b",x" * 200 + b"\n"
    assert refusal(wide, "m.csv") == "Row 1 has 202 columns; the limit is 100."
    long = b"Source field,Target field\na," + b"b" * 40_000 + b"\n"
    assert refusal(long, "m.csv") == (
        "Row 2, column 2 holds 40,000 characters; the limit is 32,767."
    )
    longer = b"Source field,Target field\na," + b"b" * 200_000 + b"\n"
    assert refusal(longer, "m.csv") == (
        "Row 2 holds a cell of more than 131,072 characters; the limit is 32,767."
    )


def test_smaller_limits_apply():
    limits = FileLimits(max_rows=3, max_columns=5, max_cells=100)
    data = b"Source field,Target field\n" + b"a,b\n" * 3
    assert refusal(data, "m.csv", limits) == "Row 4: the limit is 3 rows."
    rows = "".join(f'<row r="{r}">{inline(f"A{r}", "a")}</row>' for r in range(2, 5))
    assert refusal(xlsx(sheet_xml(HEADER_ROW + rows)), "m.xlsx", limits) == (
        "Row 4: the limit is 3 rows."
    )


def test_the_page_and_the_api_refuse_the_bomb_with_the_limit(huge_string, project, owner_client):
    connection = ConnectionFactory(project=project)
    bomb = huge_string.read_bytes()
    message = "The file expands to 500 MB uncompressed; the limit is 50 MB."
    url = reverse("planner:mapping_import", args=[project.pk, connection.pk])
    page = owner_client.post(url, {"file": SimpleUploadedFile("m.xlsx", bomb)})
    assert page.status_code == 200
    assert [str(p) for p in page.context["problems"]] == [message]
    _, raw = create_token(project.owner, "ci")
    api = client_for(project.owner).post(
        f"/api/projects/{project.pk}/connections/{connection.pk}/mapping",
        {"file": SimpleUploadedFile("m.xlsx", bomb)},
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert api.status_code == 400
    assert api.json() == {
        "detail": "file: the spreadsheet has problems; nothing was imported.",
        "problems": [message],
        "unknown_values": [],
        "unknown_connections": [],
    }
    assert not FieldMapping.objects.exists()
