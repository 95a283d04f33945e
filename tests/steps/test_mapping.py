"""Step 2 in the browser's terms: the mapping editor, live checks, samples, import/export."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from planner.checklist.readiness import project_readiness
from planner.models import FieldMapping
from tests.conftest import HTMX, client_for
from tests.factories import (
    ConnectionFactory,
    ErrorStrategyFactory,
    FieldMappingFactory,
    waive_signoff,
)
from tests.steps.mapping_forms import add_data


@pytest.fixture
def connection(project):
    return ConnectionFactory(project=project)


def url(name, project, *args):
    return reverse(f"planner:{name}", args=[project.pk, *args])


def test_add_row_with_htmx_appends_it_and_resets_the_form(project, connection, owner_client):
    response = owner_client.post(url("mapping_add", project, connection.pk), add_data(), **HTMX)
    html = response.content.decode()
    mapping = FieldMapping.objects.get(connection=connection)
    assert (
        html.startswith('\n<div class="grid-row mapping-row')
        or f'id="mapping-{mapping.pk}"' in html
    )
    assert 'id="mapping-add-form"' in html and 'hx-swap-oob="true"' in html
    add_form = html[html.index('id="mapping-add-form"') :]
    assert 'value="Status__c"' not in add_form  # the add form comes back empty
    assert 'id="mapping-status"' in html and "1 row" in html
    assert mapping.position == 1 and mapping.project == project


def test_a_bad_rule_is_refused_with_the_token_and_input_kept(project, connection, owner_client):
    data = add_data(rule="trim | lowr")
    html = owner_client.post(
        url("mapping_add", project, connection.pk), data, **HTMX
    ).content.decode()
    assert (
        "Transformation: col 8: unknown transform &#x27;lowr&#x27; (did you mean &#x27;lower&#x27;?)"
        in html
    )
    assert 'value="trim | lowr"' in html
    assert not FieldMapping.objects.exists()


def test_a_duplicate_target_field_is_refused(project, connection, owner_client):
    FieldMappingFactory(project=project, connection=connection, target_field="status_code")
    html = owner_client.post(
        url("mapping_add", project, connection.pk), add_data(target_field="STATUS_CODE"), **HTMX
    ).content.decode()
    assert "Target field: &#x27;STATUS_CODE&#x27; is already mapped" in html
    assert FieldMapping.objects.count() == 1


def test_rule_check_marks_the_bad_token(project, connection, owner_client):
    check = url("mapping_rule_check", project, connection.pk)
    html = owner_client.get(check, {"add-mapping-rule": 'trim | regex("[")'}).content.decode()
    assert "<mark>&quot;[&quot;</mark>" in html and "error" in html
    html = owner_client.get(
        check, {"x-rule": "date() | epoch", "x-target_type": "integer"}
    ).content.decode()
    assert "valid — produces integer" in html
    html = owner_client.get(check, {"x-rule": "boolean", "x-target_type": "date"}).content.decode()
    assert "cannot become date" in html


def test_duplicate_puts_the_copy_right_after_the_original(project, connection, owner_client):
    a = FieldMappingFactory(project=project, connection=connection, position=1, target_field="a")
    b = FieldMappingFactory(project=project, connection=connection, position=2, target_field="b")
    html = owner_client.post(url("mapping_duplicate", project, a.pk), **HTMX).content.decode()
    copy = FieldMapping.objects.exclude(pk__in=[a.pk, b.pk]).get()
    assert copy.target_field == "a_copy" and copy.rule == a.rule
    order = list(
        FieldMapping.objects.filter(connection=connection).values_list("target_field", flat=True)
    )
    assert order == ["a", "a_copy", "b"]
    assert f'id="mapping-{copy.pk}"' in html


def test_move_swaps_positions_and_tells_the_browser(project, connection, owner_client):
    a = FieldMappingFactory(project=project, connection=connection, position=1)
    b = FieldMappingFactory(project=project, connection=connection, position=2)
    response = owner_client.post(url("mapping_move", project, b.pk, "up"), **HTMX)
    assert response.status_code == 204
    event = json.loads(response["HX-Trigger"])["mapping-moved"]
    assert event == {"id": f"mapping-{b.pk}", "other": f"mapping-{a.pk}", "direction": "up"}
    order = list(FieldMapping.objects.filter(connection=connection).values_list("pk", flat=True))
    assert order == [b.pk, a.pk]
    # the top row cannot go further up; a bad direction is not found
    assert "HX-Trigger" not in owner_client.post(url("mapping_move", project, b.pk, "up"), **HTMX)
    assert owner_client.post(url("mapping_move", project, b.pk, "sideways")).status_code == 404


def test_try_on_samples_shows_values_and_violations(project, connection, owner_client):
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="status",
        target_field="status_code",
        target_type="integer",
        rule="trim | lower | map(active=1, inactive=0)",
        required=True,
    )
    sample = "id,status\n1, Active \n2,pending\n"
    html = owner_client.post(
        url("mapping_try", project, connection.pk), {"sample": sample, "key": "id"}, **HTMX
    ).content.decode()
    assert "2 records" in html and "unmapped_value × 1" in html
    assert "<td>1</td><td>1</td>" in html
    assert 'class="violation" title="unmapped_value">pending' in html
    json_sample = json.dumps([{"id": 7, "status": "inactive"}])
    upload = SimpleUploadedFile("s.json", json_sample.encode(), content_type="application/json")
    html = owner_client.post(
        url("mapping_try", project, connection.pk), {"sample_file": upload, "key": "id"}, **HTMX
    ).content.decode()
    assert "<td>7</td><td>0</td>" in html and "no violations" in html
    html = owner_client.post(
        url("mapping_try", project, connection.pk), {"sample": "[{"}, **HTMX
    ).content.decode()
    assert "Invalid JSON at line 1" in html


def test_try_on_samples_shows_null_keys_and_values_as_highlighted_empty_cells(
    project, connection, owner_client
):
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="status",
        target_field="status_code",
        target_type="integer",
        rule="trim | lower | map(active=1, inactive=0)",
        required=False,
        null_rule="skip",
    )
    sample = "id,status\n,active\n3,\n"
    html = owner_client.post(
        url("mapping_try", project, connection.pk), {"sample": sample, "key": "id"}, **HTMX
    ).content.decode()
    assert "None" not in html
    null_cell = '<td class="null"><span class="visually-hidden">null</span></td>'
    # the empty key of the first record, then the null status of the second
    assert f"<tr>{null_cell}<td>1</td></tr>" in html
    assert f"<tr><td>3</td>{null_cell}</tr>" in html


def test_deleting_a_mapping_row_without_javascript_asks_first(project, connection, owner_client):
    row = FieldMappingFactory(project=project, connection=connection, target_field="vat_no")
    delete = url("mapping_delete", project, row.pk)
    editor = owner_client.get(url("mapping_editor", project, connection.pk)).content.decode()
    # The Delete control is a link to the confirmation page, not a submit of the row's form.
    assert f'<a class="btn small danger" role="button" href="{delete}"' in editor
    assert "vat_no" in owner_client.get(delete).content.decode()
    assert FieldMapping.objects.filter(pk=row.pk).exists()
    owner_client.post(delete)
    assert not FieldMapping.objects.filter(pk=row.pk).exists()


def test_viewers_may_try_samples_but_not_edit(project, connection, member):
    viewer = client_for(member("viewer"))
    response = viewer.post(url("mapping_try", project, connection.pk), {"sample": "a\n1\n"}, **HTMX)
    assert response.status_code == 200
    assert viewer.post(url("mapping_add", project, connection.pk), add_data()).status_code == 403


CSV = (
    "Source field,Target field,Source type,Target type,Transformation,Null rule\n"
    'Status__c,status_code,string,integer,"trim | lower | map(active=1, inactive=0)",reject\n'
    "Email,email,string,string,trim | lower,reject\n"
)


def test_import_previews_then_saves_everything(project, connection, owner_client):
    upload = SimpleUploadedFile("map.csv", CSV.encode())
    preview = owner_client.post(url("mapping_import", project, connection.pk), {"file": upload})
    html = preview.content.decode()
    assert "map.csv: 2 rows" in html and 'name="encoded"' in html
    assert '<option value="source_field" selected>' in html
    assert not FieldMapping.objects.exists()  # nothing saved at the preview
    ctx = preview.context
    form = {"step": "confirm", "encoded": ctx["encoded"], "filename": "map.csv", "mode": "append"}
    form |= {f"col_{i}": (field or "") for i, field in ctx["columns"].items()}
    done = owner_client.post(url("mapping_import", project, connection.pk), form)
    assert done.status_code == 302
    rows = list(FieldMapping.objects.filter(connection=connection))
    assert [r.target_field for r in rows] == ["status_code", "email"]
    assert [r.position for r in rows] == [1, 2]


def test_a_bad_import_lists_problems_and_changes_nothing(project, connection, owner_client):
    existing = FieldMappingFactory(project=project, connection=connection, target_field="email")
    upload = SimpleUploadedFile("map.csv", CSV.replace("trim | lower,", "trim | lowr,").encode())
    preview = owner_client.post(url("mapping_import", project, connection.pk), {"file": upload})
    ctx = preview.context
    form = {"step": "confirm", "encoded": ctx["encoded"], "filename": "map.csv", "mode": "append"}
    form |= {f"col_{i}": (field or "") for i, field in ctx["columns"].items()}
    html = owner_client.post(url("mapping_import", project, connection.pk), form).content.decode()
    assert "2 problems — nothing was imported." in html
    assert "row 3, column &#x27;Transformation&#x27;: at character 8: unknown transform" in html
    assert "row 3, column &#x27;Target field&#x27;: &#x27;email&#x27; is already mapped" in html
    assert list(FieldMapping.objects.all()) == [existing]


def test_import_replace_mode_and_column_rematching(project, connection, owner_client):
    FieldMappingFactory(project=project, connection=connection, target_field="old")
    csv = "A,B\nx,y\n"
    upload = SimpleUploadedFile("map.csv", csv.encode())
    html = owner_client.post(
        url("mapping_import", project, connection.pk), {"file": upload}
    ).content.decode()
    assert "The first row must name the columns" in html
    csv = "From,Wherever\nx,y\n"
    preview = owner_client.post(
        url("mapping_import", project, connection.pk),
        {"file": SimpleUploadedFile("m.csv", csv.encode())},
    )
    form = {
        "step": "confirm",
        "encoded": preview.context["encoded"],
        "filename": "m.csv",
        "mode": "replace",
        "col_0": "source_field",
        "col_1": "target_field",
    }
    owner_client.post(url("mapping_import", project, connection.pk), form)
    assert list(FieldMapping.objects.values_list("source_field", "target_field")) == [("x", "y")]


def test_export_downloads_and_reimports_unchanged(project, connection, owner_client):
    FieldMappingFactory(
        project=project, connection=connection, rule='concat(a, " ", b)', notes="x,y"
    )
    for fmt in ("csv", "xlsx"):
        response = owner_client.get(url("mapping_export", project, connection.pk, fmt))
        assert response.status_code == 200
        assert f'.{fmt}"' in response["Content-Disposition"]
    assert owner_client.get(url("mapping_export", project, connection.pk, "pdf")).status_code == 404


def test_step2_readiness_follows_the_rules(project, connection):
    waive_signoff(project, 2)  # the rules alone; sign-offs are tested in test_signoff.py
    ErrorStrategyFactory(connection=connection)
    r = project_readiness(project).for_step(2)
    assert r.state == "not_started"
    row = FieldMappingFactory(
        project=project,
        connection=connection,
        max_length=10,
        direction="bidirectional",
        rule="",
        null_rule="",
    )
    failing = {o.rule.code for o in project_readiness(project).for_step(2).outcomes if not o.passed}
    assert failing == {"transformation_stated", "null_rules", "conflict_rules", "length_checked"}
    row.rule, row.null_rule, row.conflict_rule = "trim | max_length(10)", "reject", "truth_wins"
    row.save()
    assert project_readiness(project).for_step(2).state == "complete"
    other = ConnectionFactory(project=project)
    r = project_readiness(project).for_step(2)
    assert r.state == "in_progress"
    assert [f.text for o in r.outcomes for f in o.findings] == [
        f"{other} has no mapped fields.",
        f"{other} has no error-handling strategy.",
    ]


def test_editor_queries_do_not_grow_with_rows(
    project, connection, owner_client, django_assert_max_num_queries
):
    FieldMappingFactory(project=project, connection=connection)
    editor = url("mapping_editor", project, connection.pk)
    owner_client.get(editor)
    # 20, 7 for the practices, 1 for the bell, 2 for step 7's backlog (is it live, its items)
    with django_assert_max_num_queries(30) as few:
        owner_client.get(editor)
    FieldMappingFactory.create_batch(60, project=project, connection=connection)
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = owner_client.get(editor).content.decode()
    assert html.count('class="grid-row mapping-row') == 61


def test_server_side_filter_without_javascript(project, connection, owner_client):
    FieldMappingFactory(project=project, connection=connection, target_field="email")
    FieldMappingFactory(project=project, connection=connection, target_field="status")
    html = owner_client.get(
        url("mapping_editor", project, connection.pk), {"q": "EMA"}
    ).content.decode()
    assert html.count('class="grid-row mapping-row') == 1
