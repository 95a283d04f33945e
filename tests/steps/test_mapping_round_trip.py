"""Export -> import gives back every cell exactly: CSV and XLSX, through the page and the API,
for any text (control characters, formula-like starts, spaces, line breaks, long notes)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from planner.api.tokens import create_token
from planner.models import FieldMapping
from tests.conftest import client_for
from tests.factories import ConnectionFactory

# Any character PostgreSQL can store (NUL cannot be) and XML can carry once escaped.
CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
START = st.sampled_from(["", "=", "+", "-", "@", " ", "  ", "\t", "\n", "'", "=1+2", '"'])
TEXT = st.builds(lambda a, b, c: a + b + c, START, st.text(CHARS, max_size=40), START)
LONG_NOTE = st.builds(lambda a, b: a + b, START, st.text(CHARS, min_size=5000, max_size=5000))
# Names are trimmed by design, so a name is any text without surrounding spaces.
NAME = TEXT.map(str.strip).filter(bool).map(lambda s: s[:200])
RULES = st.sampled_from(["", "trim", "  trim | lower  ", "identity", 'default("=x")'])

ROW = st.fixed_dictionaries(
    {
        "source_field": NAME,
        "target_field": NAME,
        "null_default": TEXT.map(lambda s: s[:200]),
        "rule": RULES,
        "notes": st.one_of(TEXT, LONG_NOTE),
    }
)
ROWS = st.lists(ROW, min_size=1, max_size=3, unique_by=lambda r: r["target_field"].lower())

FIXED = dict(
    source_type="string",
    target_type="string",
    null_rule="default",
    direction="one_way",
    frequency="real_time",
    source_of_truth="source",
)
COMPARED = ["source_field", "target_field", "null_default", "rule", "notes", *FIXED]


@pytest.fixture
def connection(project):
    return ConnectionFactory(project=project)


def stored(connection) -> list[dict]:
    return list(FieldMapping.objects.filter(connection=connection).values(*COMPARED))


def through_page(client, project, connection, fmt: str) -> None:
    export = client.get(
        reverse("planner:mapping_export", args=[project.pk, connection.pk, fmt])
    ).content
    url = reverse("planner:mapping_import", args=[project.pk, connection.pk])
    upload = SimpleUploadedFile(f"m.{fmt}", export)
    preview = client.post(url, {"file": upload, "mode": "replace"})
    assert not preview.context["problems"], preview.context["problems"]
    ctx = preview.context
    form = {"step": "confirm", "encoded": ctx["encoded"], "filename": ctx["filename"]}
    form |= {f"col_{i}": (f or "") for i, f in ctx["columns"].items()} | {"mode": "replace"}
    assert client.post(url, form).status_code == 302


def through_api(client, project, connection, fmt: str, headers: dict) -> None:
    url = f"/api/projects/{project.pk}/connections/{connection.pk}/mapping"
    export = client.get(url, {"fmt": fmt}, **headers)
    assert export.status_code == 200
    response = client.post(
        url,
        {"file": SimpleUploadedFile(f"m.{fmt}", export.content), "mode": "replace"},
        **headers,
    )
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("via", ["page", "api"])
@hypothesis_settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(rows=ROWS)
def test_export_then_import_keeps_every_cell(project, connection, fmt, via, rows):
    FieldMapping.objects.filter(connection=connection).delete()
    for position, row in enumerate(rows, start=1):
        FieldMapping.objects.create(
            project=project, connection=connection, position=position, **row, **FIXED
        )
    before = stored(connection)
    client = client_for(project.owner)
    if via == "page":
        through_page(client, project, connection, fmt)
    else:
        _, token = create_token(project.owner, "round trip")
        through_api(client, project, connection, fmt, {"HTTP_AUTHORIZATION": f"Bearer {token}"})
    assert stored(connection) == before
