"""Step 2's grid: a real table, one cell saved at a time through the row's form and version."""

import json
import re

import pytest
from django.urls import reverse

from planner.mapping.spreadsheet import COLUMNS
from planner.models import FieldMapping, Role
from tests.conftest import client_for
from tests.factories import ConnectionFactory, FieldMappingFactory


@pytest.fixture
def connection(project):
    return ConnectionFactory(project=project)


@pytest.fixture
def row(project, connection):
    return FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="Status__c",
        target_field="status_code",
        target_type="integer",
        rule="trim | lower | map(active=1, inactive=0)",
        notes="  keep my spaces  ",
    )


def editor(project, connection):
    return reverse("planner:mapping_editor", args=[project.pk, connection.pk])


def cell(client, row, field, value, version=None):
    return client.post(
        reverse("planner:mapping_cell", args=[row.project_id, row.pk]),
        {"field": field, "value": value, "expected_version": version or row.version},
    )


def test_the_editor_is_a_table_with_announced_headers(project, connection, row, owner_client):
    html = owner_client.get(editor(project, connection)).content.decode()
    table = html[html.index('<table class="mapping-table"') : html.index("</table>")]
    assert 'role="grid"' in table and 'aria-describedby="mapping-grid-help"' in table
    assert "<caption" in table
    headers = re.findall(r'<th scope="col" data-column="(\w+)">([^<]+)</th>', table)
    assert headers == [(field, header) for field, (header, _) in COLUMNS.items()]
    # Each row is announced by its source field, each cell carries what it edits.
    assert '<th scope="row" data-field="source_field" data-value="Status__c"' in table
    assert 'data-field="notes" data-value="  keep my spaces  "' in table
    assert f'data-version="{row.version}"' in table
    # Without JavaScript each row still has its own form (the Edit page), as before.
    edit_url = reverse("planner:mapping_edit", args=[project.pk, row.pk])
    assert f'href="{edit_url}"' in table
    assert owner_client.get(edit_url).status_code == 200
    # The script is a file (strict CSP): no inline handlers or styles on the page.
    assert 'src="/static/js/mapping_grid.js"' in html
    assert " onclick=" not in html and " style=" not in html
    names = json.loads(
        re.search(
            r'<script id="mapping-header-names" type="application/json">(.*?)</script>', html
        )[1]
    )
    assert "Source field" in names and "Transformation" in names


def test_viewers_read_the_table_but_cannot_edit_a_cell(project, connection, row, member):
    viewer = client_for(member(Role.VIEWER))
    html = viewer.get(editor(project, connection)).content.decode()
    assert "<table" in html and "data-editable" not in html and "data-cell-url" not in html
    assert 'tabindex="-1"' not in html and "mapping-paste-form" not in html
    assert cell(viewer, row, "target_field", "hijacked").status_code == 403
    row.refresh_from_db()
    assert row.target_field == "status_code"


def test_a_cell_is_saved_alone_with_the_row_re_rendered(project, connection, row, owner_client):
    response = cell(owner_client, row, "target_field", "  status  ")
    assert response.status_code == 200
    html = response.content.decode()
    saved = FieldMapping.objects.get(pk=row.pk)
    assert saved.target_field == "status"  # trimmed by the form, as when typed in the form
    assert saved.notes == "  keep my spaces  "  # the other cells are never rewritten
    assert saved.version == row.version + 1
    assert f'id="mapping-{row.pk}"' in html and f'data-version="{saved.version}"' in html
    assert 'id="mapping-status"' in html and 'hx-swap-oob="true"' in html
    assert saved.history.count() == 2


def test_each_kind_of_cell_goes_through_the_form(project, connection, row, owner_client):
    version = row.version
    for field, value, stored in [
        ("required", "on", True),
        ("max_length", "12", 12),
        ("frequency", "minutes", None),  # refused: the form asks how many minutes
        ("every_minutes", "5", 5),
        ("frequency", "minutes", "minutes"),
        ("notes", " line one\nline two ", " line one\nline two "),  # exact, as the form keeps it
        ("required", "", False),
    ]:
        response = cell(owner_client, row, field, value, version)
        saved = FieldMapping.objects.get(pk=row.pk)
        if stored is None:
            assert response.status_code == 422
            assert response.json()["message"].startswith("Every N minutes: Say how many minutes")
            continue
        assert response.status_code == 200, response.content
        assert getattr(saved, field) == stored
        version = saved.version


def test_a_cell_the_form_refuses_is_not_saved(project, connection, row, owner_client):
    response = cell(owner_client, row, "rule", "trim | lowr")
    assert response.status_code == 422
    assert response.json() == {
        "message": "col 8: unknown transform 'lowr' (did you mean 'lower'?)",
        "field": "rule",
    }
    # Checked against the row's target type, as in the form: a date format for an integer.
    response = cell(owner_client, row, "rule", 'date("%Y-%m-%d")')
    assert response.status_code == 422 and "integer" in response.json()["message"]
    other = FieldMappingFactory(project=project, connection=connection, target_field="email")
    response = cell(owner_client, other, "target_field", "STATUS_CODE")
    assert response.status_code == 422
    assert response.json()["message"] == "'STATUS_CODE' is already mapped from 'Status__c'."
    assert cell(owner_client, row, "project", "1").status_code == 400
    assert cell(owner_client, row, "max_length", "0").status_code == 422
    saved = FieldMapping.objects.get(pk=row.pk)
    assert (saved.rule, saved.max_length, saved.version) == (row.rule, None, row.version)


def test_a_stale_cell_is_refused_and_the_current_row_returned(
    project, connection, row, owner_client, member
):
    colleague = member(Role.EDITOR)
    assert cell(client_for(colleague), row, "notes", "theirs").status_code == 200
    response = cell(owner_client, row, "target_field", "mine", version=row.version)
    assert response.status_code == 409
    reply = response.json()
    assert reply["message"].startswith(f"{colleague.username} changed this row")
    assert "theirs" in reply["row"] and f'data-version="{row.version + 1}"' in reply["row"]
    saved = FieldMapping.objects.get(pk=row.pk)
    assert (saved.target_field, saved.notes) == ("status_code", "theirs")
    # Saving again with the version the refusal showed overwrites knowingly.
    assert (
        cell(owner_client, row, "target_field", "mine", version=row.version + 1).status_code == 200
    )
    assert FieldMapping.objects.get(pk=row.pk).target_field == "mine"


def test_a_cell_of_another_project_is_not_found(project, row, owner_client):
    stranger = FieldMappingFactory()
    response = owner_client.post(
        reverse("planner:mapping_cell", args=[project.pk, stranger.pk]),
        {"field": "notes", "value": "x", "expected_version": stranger.version},
    )
    assert response.status_code == 404
    assert FieldMapping.objects.get(pk=stranger.pk).notes == ""


def test_500_rows_render_with_the_queries_of_one(
    project, connection, owner_client, django_assert_max_num_queries
):
    FieldMappingFactory(project=project, connection=connection)
    url = editor(project, connection)
    owner_client.get(url)
    # 27, 1 for the header bell, 2 for step 7's backlog (is the project live, its items)
    with django_assert_max_num_queries(30) as one:
        owner_client.get(url)
    FieldMappingFactory.create_batch(499, project=project, connection=connection)
    with django_assert_max_num_queries(len(one.captured_queries)):
        html = owner_client.get(url).content.decode()
    assert html.count('class="grid-row mapping-row') == 500
    assert html.count('data-field="rule"') == 500


def test_a_pasted_tsv_block_goes_to_the_import_preview(project, connection, owner_client):
    """What the grid posts for a paste: the rows as a TSV file to the import page."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    block = "Source field\tTarget field\tNotes\nPhone\tphone\t  as typed  \nFax\tfax\t\n"
    response = owner_client.post(
        reverse("planner:mapping_import", args=[project.pk, connection.pk]),
        {"file": SimpleUploadedFile("pasted-rows.tsv", block.encode())},
    )
    html = response.content.decode()
    assert "pasted-rows.tsv: 2 rows" in html
    assert '<option value="source_field" selected>' in html
    assert not FieldMapping.objects.exists()
