"""A mapping row's tolerance is part of the spec: editor, spreadsheet, runbook."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from planner.models import FieldMapping
from tests.conftest import HTMX
from tests.factories import ConnectionFactory, FieldMappingFactory
from tests.steps.mapping_forms import add_data


@pytest.fixture
def connection(project):
    return ConnectionFactory(project=project)


def url(name, project, *args):
    return reverse(f"planner:{name}", args=[project.pk, *args])


def amount(**overrides):
    values = {
        "source_field": "Amount__c",
        "target_field": "amount",
        "source_type": "decimal",
        "target_type": "decimal",
        "rule": "identity",
    }
    return add_data(**(values | overrides))


def test_the_editor_shows_and_saves_a_tolerance(project, connection, owner_client):
    editor = owner_client.get(url("mapping_editor", project, connection.pk)).content.decode()
    assert 'name="add-mapping-tolerance"' in editor and "a percentage (0.5%)" in editor
    response = owner_client.post(
        url("mapping_add", project, connection.pk), amount(tolerance=" 0.000001 "), **HTMX
    )
    assert response.status_code == 200
    assert FieldMapping.objects.get(connection=connection).tolerance == "0.000001"
    editor = owner_client.get(url("mapping_editor", project, connection.pk)).content.decode()
    # The grid shows the tolerance in its own column, as the spreadsheet does.
    assert 'data-field="tolerance" data-value="0.000001"' in editor


@pytest.mark.parametrize(
    ("tolerance", "target_type", "message"),
    [
        ("a bit", "decimal", "&#x27;a bit&#x27; is not a tolerance"),
        ("2 parsecs", "decimal", "&#x27;2 parsecs&#x27;: unknown unit &#x27;parsecs&#x27;"),
        ("1s", "decimal", "A duration tolerance needs a date or datetime target type."),
        ("0.5%", "string", "A numeric tolerance needs an integer or decimal target type."),
    ],
)
def test_a_bad_tolerance_is_refused_naming_the_field(
    project, connection, owner_client, tolerance, target_type, message
):
    html = owner_client.post(
        url("mapping_add", project, connection.pk),
        amount(tolerance=tolerance, target_type=target_type),
        **HTMX,
    ).content.decode()
    assert f"Tolerance: {message}" in html
    assert not FieldMapping.objects.exists()


def test_the_spreadsheet_exports_and_imports_the_tolerance(project, connection, owner_client):
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="At",
        target_field="at",
        source_type="datetime",
        target_type="datetime",
        rule="identity",
        tolerance="1s",
    )
    exported = owner_client.get(url("mapping_export", project, connection.pk, "csv"))
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [(r["Target field"], r["Tolerance"]) for r in rows] == [("at", "1s")]

    sheet = (
        "Source field,Target field,Source type,Target type,Transformation,Tolerance\n"
        "Amount,amount,decimal,decimal,identity,0.5%\n"
        "Name,name,string,string,identity,0.01\n"
    )
    upload = SimpleUploadedFile("map.csv", sheet.encode())
    preview = owner_client.post(url("mapping_import", project, connection.pk), {"file": upload})
    ctx = preview.context
    form = {"step": "confirm", "encoded": ctx["encoded"], "filename": "map.csv", "mode": "append"}
    form |= {f"col_{i}": (field or "") for i, field in ctx["columns"].items()}
    html = owner_client.post(url("mapping_import", project, connection.pk), form).content.decode()
    assert (
        "row 3, column &#x27;Tolerance&#x27;: A numeric tolerance needs an integer or decimal"
        in html
    )
    assert FieldMapping.objects.count() == 1  # nothing imported

    fixed = sheet.replace("identity,0.01", "identity,")
    upload = SimpleUploadedFile("map.csv", fixed.encode())
    preview = owner_client.post(url("mapping_import", project, connection.pk), {"file": upload})
    ctx = preview.context
    form = {"step": "confirm", "encoded": ctx["encoded"], "filename": "map.csv", "mode": "append"}
    form |= {f"col_{i}": (field or "") for i, field in ctx["columns"].items()}
    assert owner_client.post(url("mapping_import", project, connection.pk), form).status_code == 302
    saved = dict(FieldMapping.objects.values_list("target_field", "tolerance"))
    assert saved == {"at": "1s", "amount": "0.5%", "name": ""}


def test_the_runbook_states_each_row_s_tolerance(project, connection, owner_client):
    FieldMappingFactory(
        project=project, connection=connection, target_field="amount", tolerance="0.000001"
    )
    FieldMappingFactory(project=project, connection=connection, target_field="name")
    html = owner_client.get(reverse("planner:runbook_preview", args=[project.pk])).content
    html = html.decode()
    assert '<th scope="col">Nulls, tolerance,' in html
    assert "tolerance: 0.000001 ·" in html and "tolerance: exact ·" in html
