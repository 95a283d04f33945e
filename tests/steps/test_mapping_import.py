"""Importing a mapping spreadsheet kept the way people keep one: web page, paste and API."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from planner.api.tokens import create_token
from planner.models import Connection, FieldMapping, System, ValueMeaning
from tests.factories import ConnectionFactory, FieldMappingFactory, SystemFactory
from tests.steps.mapping_forms import PM_SHEET, confirm, page, preview


@pytest.fixture
def connection(project):
    crm = SystemFactory(project=project, name="Sales CRM")
    billing = SystemFactory(project=project, name="Billing")
    return ConnectionFactory(project=project, source=crm, target=billing)


def api_url(project, connection):
    return f"/api/projects/{project.pk}/connections/{connection.pk}/mapping"


def api_headers(user) -> dict:
    _, raw = create_token(user, "ci")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_a_sheet_kept_by_a_pm_comes_in_whole_and_exactly(project, connection, owner_client):
    response = preview(owner_client, project, connection, PM_SHEET.encode())
    assert not response.context["problems"]
    assert "Field names and types are trimmed" in response.content.decode()
    confirm(owner_client, project, connection, response)
    rows = list(FieldMapping.objects.filter(connection=connection).order_by("position"))
    assert [r.target_field for r in rows] == ["email", "name", "id"]
    email, name, ident = rows
    assert (email.frequency, email.every_minutes, email.max_length) == ("minutes", 5, 80)
    assert (email.null_rule, email.required, email.notes) == ("reject", True, "  keep my spaces  ")
    assert (name.frequency, name.every_minutes, name.notes) == ("minutes", 60, "two\nlines")
    assert (ident.frequency, ident.null_rule, ident.null_default) == ("daily", "default", "0")


def test_the_api_imports_the_same_sheet_the_same_way(project, connection, client):
    response = client.post(
        api_url(project, connection),
        {"file": SimpleUploadedFile("m.csv", PM_SHEET.encode())},
        **api_headers(project.owner),
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["imported"] == 3
    assert body["connections"] == [
        {
            "connection_id": connection.pk,
            "source": "Sales CRM",
            "target": "Billing",
            "imported": 3,
            "created": False,
        }
    ]
    assert FieldMapping.objects.get(target_field="email").notes == "  keep my spaces  "


OTHER = (
    "Source System,Target System,Source field,Target field\n"
    "Sales CRM,Billing,a,a\n"
    "Billing,Data Warehouse,b,b\n"
    "billing ,data warehouse,c,c\n"
)


def test_rows_for_another_connection_go_there(project, connection, owner_client):
    warehouse = SystemFactory(project=project, name="Data Warehouse")
    other = ConnectionFactory(project=project, source=connection.target, target=warehouse)
    response = preview(owner_client, project, connection, OTHER.encode())
    html = response.content.decode()
    assert "Billing → Data Warehouse: 2 rows" in html
    confirm(owner_client, project, connection, response)
    assert list(connection.field_mappings.values_list("target_field", flat=True)) == ["a"]
    assert list(other.field_mappings.values_list("target_field", flat=True)) == ["b", "c"]


def test_an_unknown_pair_is_listed_and_created_only_when_asked(project, connection, owner_client):
    response = preview(owner_client, project, connection, OTHER.encode())
    html = response.content.decode()
    assert "Billing → Data Warehouse: 2 rows" in html and "no such connection" in html
    refused = confirm(owner_client, project, connection, response)
    assert "No connection Billing → Data Warehouse in this project (rows 3, 4)" in (
        refused.content.decode()
    )
    assert not FieldMapping.objects.exists()
    confirm(owner_client, project, connection, response, create_connections="1")
    created = Connection.objects.get(target__name="Data Warehouse")
    assert created.source == connection.target  # the existing system, matched by name
    assert System.objects.filter(project=project, name="Data Warehouse").count() == 1
    assert list(created.field_mappings.values_list("target_field", flat=True)) == ["b", "c"]


def test_the_api_routes_and_refuses_an_unknown_pair_unless_asked(project, connection, client):
    headers = api_headers(project.owner)
    file = lambda: SimpleUploadedFile("m.csv", OTHER.encode())  # noqa: E731
    refused = client.post(api_url(project, connection), {"file": file()}, **headers)
    assert refused.status_code == 400
    assert refused.json()["unknown_connections"] == ["Billing → Data Warehouse"]
    assert not FieldMapping.objects.exists()
    ok = client.post(
        api_url(project, connection), {"file": file(), "create_connections": "true"}, **headers
    )
    assert ok.status_code == 200, ok.json()
    assert [(c["target"], c["imported"], c["created"]) for c in ok.json()["connections"]] == [
        ("Billing", 1, False),
        ("Data Warehouse", 2, True),
    ]


UNKNOWN = (
    "Source field,Target field,Sync frequency\n"
    "a,a,every fortnight\n"
    "b,b,Every  Fortnight\n"
    "c,c,daily\n"
)


def test_an_unknown_value_is_matched_once_and_remembered(project, connection, owner_client):
    response = preview(owner_client, project, connection, UNKNOWN.encode())
    unknown = response.context["plan"].unknown
    assert [(u.text, u.rows) for u in unknown] == [("every fortnight", (2, 3))]
    assert 'data-testid="value-matching"' in response.content.decode()
    refused = confirm(owner_client, project, connection, response)
    assert "is not a sync frequency the importer knows" in refused.content.decode()
    assert not FieldMapping.objects.exists()
    confirm(
        owner_client,
        project,
        connection,
        response,
        value_field="frequency",
        value_key="every fortnight",
        value_meaning="weekly",
    )
    assert [(m.frequency, m.every_minutes) for m in FieldMapping.objects.order_by("position")] == [
        ("minutes", 10080),
        ("minutes", 10080),
        ("daily", None),
    ]
    assert ValueMeaning.objects.get(project=project).meaning == "weekly"
    # The next sheet with that value needs no matching.
    again = UNKNOWN.replace("a,a", "x,x").replace("b,b", "y,y").replace("c,c", "z,z")
    second = preview(owner_client, project, connection, again.encode())
    assert not second.context["plan"].unknown and not second.context["problems"]


def test_a_meaning_that_is_not_offered_is_refused(project, connection, owner_client):
    response = preview(owner_client, project, connection, UNKNOWN.encode())
    html = confirm(
        owner_client,
        project,
        connection,
        response,
        value_field="frequency",
        value_key="every fortnight",
        value_meaning="sometimes",
    ).content.decode()
    assert "&#x27;sometimes&#x27; is not one of: real-time" in html
    assert not FieldMapping.objects.exists() and not ValueMeaning.objects.exists()


def test_the_api_lists_unknown_values_and_takes_their_meaning(project, connection, client):
    headers = api_headers(project.owner)
    file = lambda: SimpleUploadedFile("m.csv", UNKNOWN.encode())  # noqa: E731
    refused = client.post(api_url(project, connection), {"file": file()}, **headers)
    assert refused.status_code == 400
    [value] = refused.json()["unknown_values"]
    assert value["value"] == "every fortnight" and value["rows"] == [2, 3]
    assert "weekly" in value["choices"]
    values = json.dumps({"frequency": {"every fortnight": "weekly"}})
    ok = client.post(api_url(project, connection), {"file": file(), "values": values}, **headers)
    assert ok.status_code == 200, ok.json()
    assert ValueMeaning.objects.get(project=project).meaning == "weekly"


def test_import_checks_each_row_like_the_editor(project, connection, owner_client):
    csv = (
        "Source field,Target field,Target type,Transformation,Null rule,Default value,"
        "Target max length\n"
        'created,created_on,integer,"date(""%Y-%m-%d"")",reject,,\n'
        "code,code,string,identity,default,toolong,3\n"
        f"x,{'t' * 201},string,identity,reject,,\n"
    )
    response = preview(owner_client, project, connection, csv.encode())
    problems = [str(p) for p in response.context["problems"]]
    assert any(p.startswith("row 2, column 'Transformation': at character 1:") for p in problems)
    assert any(p.startswith("row 3, column 'Default value':") for p in problems), problems
    assert "row 4, column 'Target field': 201 characters; the limit is 200." in problems
    confirm(owner_client, project, connection, response)
    assert not FieldMapping.objects.exists()


def test_a_rule_message_counts_characters_in_the_cell(project, connection, owner_client):
    csv = 'Src Field,Dest Field,Mapping Rule\nstatus,status," upper | map(a=1"\n'
    response = preview(owner_client, project, connection, csv.encode())
    assert [str(p) for p in response.context["problems"]] == [
        "row 2, column 'Mapping Rule': missing ')' to close 'map(' opened at character 10"
    ]


def test_pasted_rows_go_through_the_same_preview(project, connection, owner_client):
    pasted = "Status__c\tstring\tstatus\tstring\t\tno\tskip\t\ttrim\t\tboth\tevery fortnight\r\n"
    response = owner_client.post(page(project, connection), {"pasted": pasted})
    assert response.context["filename"] == "pasted.tsv"
    assert [u.text for u in response.context["plan"].unknown] == ["every fortnight"]
    confirm(
        owner_client,
        project,
        connection,
        response,
        value_field="frequency",
        value_key="every fortnight",
        value_meaning="daily",
        mode="append",
    )
    row = FieldMapping.objects.get()
    assert (row.source_field, row.direction, row.frequency) == (
        "Status__c",
        "bidirectional",
        "daily",
    )


def test_a_preview_writes_nothing(project, connection, owner_client):
    FieldMappingFactory(project=project, connection=connection, target_field="kept")
    response = preview(owner_client, project, connection, OTHER.encode())
    assert response.status_code == 200
    assert Connection.objects.count() == 1 and FieldMapping.objects.count() == 1


def test_a_viewer_cannot_import(project, connection, viewer_client):
    response = preview(viewer_client, project, connection, PM_SHEET.encode())
    assert response.status_code == 403
