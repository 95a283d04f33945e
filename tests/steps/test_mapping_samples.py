"""Try on samples never answers 500: hostile or odd samples and contradictory rows get a message.

Also the FieldMapping form, which refuses the contradictions the engine cannot run in the
first place (a default longer than the max length, a default the target type cannot hold).
"""

import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from planner.mapping.samples import MAX_JSON_DEPTH, SampleError, read_sample
from planner.models import FieldMapping
from planner.steps.mapping.forms import FieldMappingForm
from tests.conftest import HTMX
from tests.factories import ConnectionFactory, FieldMappingFactory


@pytest.fixture
def connection(project):
    return ConnectionFactory(project=project)


@pytest.fixture
def status_row(project, connection):
    return FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="status",
        target_field="status_code",
        target_type="integer",
        rule="trim | lower | map(active=1, inactive=0)",
        required=True,
    )


def try_url(project, connection):
    return reverse("planner:mapping_try", args=[project.pk, connection.pk])


def try_sample(client, project, connection, htmx=True, **data):
    extra = HTMX if htmx else {}
    return client.post(try_url(project, connection), data, **extra)


def error_of(response) -> str:
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="error" role="alert"' in html, html
    return html.split('class="error" role="alert">', 1)[1].split("</p>", 1)[0]


# Hostile samples -------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [True, False])
def test_json_nested_100000_levels_deep_is_refused_not_a_500(
    project, connection, status_row, owner_client, htmx
):
    started = time.monotonic()
    response = try_sample(owner_client, project, connection, htmx, sample="[" * 100_000)
    assert time.monotonic() - started < 5
    assert error_of(response) == (
        f"The JSON sample is nested more than {MAX_JSON_DEPTH} levels deep; "
        "records are a list of flat objects."
    )


def test_deep_but_well_formed_json_uploaded_as_a_file_is_refused(
    project, connection, status_row, owner_client
):
    deep = "[" * 5000 + "]" * 5000
    upload = SimpleUploadedFile("deep.json", deep.encode(), content_type="application/json")
    response = try_sample(owner_client, project, connection, sample_file=upload)
    assert "nested more than" in error_of(response)


def test_nesting_inside_strings_does_not_count_and_moderate_nesting_still_runs():
    # Brackets inside string values are text, not structure.
    frame = read_sample(json.dumps([{"status": "[" * 5000, "tags": {"a": [1, [2, [3]]]}}]))
    assert frame.to_dicts() == [{"status": "[" * 5000, "tags": '{"a": [1, [2, [3]]]}'}]
    nested = "[" * (MAX_JSON_DEPTH - 2) + "{}" + "]" * (MAX_JSON_DEPTH - 2)
    with pytest.raises(SampleError, match="must be an object or a list of objects"):
        read_sample(nested)
    with pytest.raises(SampleError, match="nested more than"):
        read_sample("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))


def test_a_number_too_long_to_convert_is_invalid_json_not_a_500(
    project, connection, status_row, owner_client
):
    sample = '[{"status": "active", "id": ' + "9" * 5000 + "}]"
    message = error_of(try_sample(owner_client, project, connection, sample=sample))
    assert message.startswith("Invalid JSON: ")
    assert "digits" in message


def test_a_non_utf8_upload_says_which_encoding_and_where(
    project, connection, status_row, owner_client
):
    latin1 = "id,status\n1,active\n2,Résilié\n".encode("latin-1")
    upload = SimpleUploadedFile("s.csv", latin1, content_type="text/csv")
    response = try_sample(owner_client, project, connection, sample_file=upload)
    assert error_of(response) == (
        "The file is not UTF-8 text: byte 0xe9 on line 3 cannot be read. "
        "Save it as UTF-8 (in Excel: CSV UTF-8) and upload it again."
    )


def test_a_non_utf8_upload_without_htmx_shows_the_page_with_the_message(
    project, connection, status_row, owner_client
):
    upload = SimpleUploadedFile("s.json", b'[{"status": "\xff"}]', content_type="application/json")
    response = try_sample(owner_client, project, connection, htmx=False, sample_file=upload)
    assert "byte 0xff on line 1 cannot be read" in error_of(response)


def test_a_sample_with_a_column_named_like_the_row_counter_runs(
    project, connection, status_row, owner_client
):
    sample = "__row,status\nx,active\ny,inactive\n"
    html = try_sample(owner_client, project, connection, sample=sample).content.decode()
    assert "2 records" in html and "<td>1</td><td>1</td>" in html and "<td>2</td><td>0</td>" in html


def test_a_column_read_by_a_rule_but_absent_from_the_sample_is_null_not_a_500(
    project, connection, owner_client
):
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="first",
        target_field="full_name",
        null_rule="skip",
        rule='concat(first, " ", last)',
    )
    html = try_sample(owner_client, project, connection, sample="first\nAda\n").content.decode()
    assert "1 record" in html and "The sample has no column last: treated as null." in html


# Contradictory rows saved before the form refused them -----------------------------------------


def test_a_stored_default_longer_than_the_max_length_is_shown_not_a_500(
    project, connection, status_row, owner_client
):
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="name",
        target_field="short_name",
        max_length=5,
        null_rule="default",
        null_default="twelve chars",
        rule="max_length(5)",
    )
    html = try_sample(
        owner_client, project, connection, sample="id,status,name\n1,active,Ada\n", key="id"
    ).content.decode()
    # The other rows still run; the broken one is named with its problem.
    assert "1 record" in html and "<td>1</td><td>1</td>" in html
    assert (
        "Skipped rows that cannot run: name → short_name (the default value is 12 characters; "
        "the max length is 5)." in html
    )


def test_when_every_row_is_contradictory_the_message_names_them(project, connection, owner_client):
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="name",
        target_field="short_name",
        max_length=5,
        null_rule="default",
        null_default="twelve chars",
        rule="max_length(5)",
    )
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="qty",
        target_field="quantity",
        target_type="integer",
        null_rule="default",
        null_default="lots",
        rule="identity",
    )
    message = error_of(try_sample(owner_client, project, connection, sample="name,qty\nAda,1\n"))
    assert message == (
        "No row can run; fix them first: name → short_name (the default value is 12 "
        "characters; the max length is 5); qty → quantity (the default value &#x27;lots&#x27; "
        "is not a valid integer)."
    )


def test_other_stored_contradictions_are_skipped_with_their_reason(
    project, connection, status_row, owner_client
):
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="code",
        target_field="code",
        max_length=0,
        rule="identity",
    )
    # The form refuses a second row with the same target; an import or a race may not have.
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="state",
        target_field="status_code",
        rule="identity",
    )
    html = try_sample(
        owner_client, project, connection, sample="status,code,state\nactive,A,x\n"
    ).content.decode()
    assert "1 record" in html and "<td>1</td><td>1</td>" in html
    assert "code → code (the max length must be at least 1; leave it empty for no limit)" in html
    assert "state → status_code (status_code is already mapped from status)" in html


# The form refuses the contradictions in the first place ----------------------------------------


def mapping_form(connection, **overrides) -> FieldMappingForm:
    data = {
        "source_field": "name",
        "source_type": "string",
        "target_field": "short_name",
        "target_type": "string",
        "null_rule": "default",
        "null_default": "",
        "max_length": "",
        "rule": "trim",
        "direction": "one_way",
        "frequency": "real_time",
        "source_of_truth": "source",
    }
    data.update(overrides)
    return FieldMappingForm(
        data,
        instance=FieldMapping(connection=connection, project=connection.project),
        project=connection.project,
    )


def test_the_form_refuses_a_default_longer_than_the_max_length(connection):
    form = mapping_form(
        connection, max_length="5", null_default="twelve chars", rule="max_length(5)"
    )
    assert not form.is_valid()
    assert form.errors["null_default"] == [
        "The default value is 12 characters; the max length is 5."
    ]
    assert mapping_form(
        connection, max_length="5", null_default="short", rule="max_length(5)"
    ).is_valid()
    # Another null rule never uses the default: nothing to contradict.
    assert mapping_form(
        connection, max_length="5", null_default="twelve chars", null_rule="skip"
    ).is_valid()


def test_the_form_refuses_a_default_the_target_type_cannot_hold(connection):
    form = mapping_form(connection, target_type="integer", null_default="lots", rule="identity")
    assert not form.is_valid()
    assert form.errors["null_default"] == ["The default value 'lots' is not a valid integer."]
    form = mapping_form(connection, target_type="date", null_default="2024-13-01", rule="identity")
    assert form.errors["null_default"] == ["The default value '2024-13-01' is not a valid date."]
    form = mapping_form(connection, target_type="integer", rule="identity")
    assert form.errors["null_default"] == [
        "Give the default value: an empty value is not a valid integer."
    ]
    assert mapping_form(
        connection, target_type="integer", null_default="0", rule="identity"
    ).is_valid()
    # A string default may be empty.
    assert mapping_form(connection).is_valid()


def test_the_form_refuses_a_max_length_of_zero(connection):
    form = mapping_form(connection, max_length="0", null_rule="skip")
    assert form.errors["max_length"] == [
        "The max length must be at least 1; leave it empty for no limit."
    ]


def test_adding_a_contradictory_row_in_the_editor_is_refused_with_the_input_kept(
    project, connection, owner_client
):
    data = {
        "source_field": "name",
        "source_type": "string",
        "target_field": "short_name",
        "target_type": "string",
        "max_length": "5",
        "null_rule": "default",
        "null_default": "twelve chars",
        "rule": "max_length(5)",
        "direction": "one_way",
        "frequency": "real_time",
        "source_of_truth": "source",
    }
    response = owner_client.post(
        reverse("planner:mapping_add", args=[project.pk, connection.pk]),
        {f"add-mapping-{k}": v for k, v in data.items()},
        **HTMX,
    )
    html = response.content.decode()
    assert "The default value is 12 characters; the max length is 5." in html
    assert 'value="twelve chars"' in html
    assert not FieldMapping.objects.exists()
