"""The JSON API: token auth, per-project roles on every endpoint, the CI flow, and
schemathesis against the served OpenAPI schema (in-process, bounded)."""

import re
import urllib.request

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, settings

from planner.api.tokens import create_token
from planner.models import ApiToken, FieldMapping, Role
from planner.runs import service as validation
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory, ready_project

API = "/api"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(validation, "dispatch", lambda run: None)


def bearer(user) -> dict:
    _, raw = create_token(user, "ci")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def world(db):
    project, connection = ready_project()
    run = project.validation_runs.get()
    return {"project": project, "connection": connection, "run": run}


def endpoints(w) -> list[tuple[str, str, dict]]:
    p, c, r = w["project"].pk, w["connection"].pk, w["run"].pk
    csv = "source field,target field\nid,id\n"
    from django.core.files.uploadedfile import SimpleUploadedFile

    return [
        ("get", f"{API}/projects/{p}/verdict", {}),
        ("post", f"{API}/projects/{p}/connections/{c}/runs", {}),
        ("get", f"{API}/projects/{p}/runs/{r}", {}),
        ("get", f"{API}/projects/{p}/runs/{r}/results", {}),
        ("get", f"{API}/projects/{p}/connections/{c}/mapping", {}),
        (
            "post",
            f"{API}/projects/{p}/connections/{c}/mapping",
            {"data": {"file": SimpleUploadedFile("m.csv", csv.encode())}},
        ),
        ("get", f"{API}/projects/{p}/runbook.pdf", {}),
    ]


def test_every_project_endpoint_refuses_a_non_member_token(world):
    client, headers = Client(), bearer(UserFactory())
    assert len(endpoints(world)) == 7
    for method, url, extra in endpoints(world):
        response = getattr(client, method)(url, **extra, **headers)
        assert response.status_code == 404, (method, url, response.status_code)
        assert world["project"].name.encode() not in response.content
    # and the project list does not show it
    listed = client.get(f"{API}/projects", **headers).json()
    assert listed == []


def test_no_token_or_a_revoked_token_is_refused(world):
    client = Client()
    user = world["project"].owner
    token, raw = create_token(user, "ci")
    for method, url, _extra in endpoints(world):
        assert getattr(client, method)(url).status_code == 401, url
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert client.get(f"{API}/projects", **headers).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at="2026-01-01T00:00:00Z")
    assert client.get(f"{API}/projects", **headers).status_code == 401
    # Only a hash is stored.
    assert raw not in str(ApiToken.objects.values_list().get(pk=token.pk))


def test_a_viewer_reads_but_cannot_start_runs_or_import(world):
    viewer = MembershipFactory(project=world["project"], role=Role.VIEWER).user
    client, headers = Client(), bearer(viewer)
    for method, url, extra in endpoints(world):
        response = getattr(client, method)(url, **extra, **headers)
        assert response.status_code == (403 if method == "post" else 200), (
            url,
            response.status_code,
        )


def test_the_ci_flow_gate_run_poll_results_mapping_runbook(world):
    p, c = world["project"], world["connection"]
    client, headers = Client(), bearer(p.owner)
    verdict = client.get(f"{API}/projects/{p.pk}/verdict", **headers).json()
    assert verdict["ready"] is True and verdict["reasons"] == [] and verdict["percent"] == 100
    started = client.post(
        f"{API}/projects/{p.pk}/connections/{c.pk}/runs?kind=validation", **headers
    )
    assert started.status_code == 202
    run_id = started.json()["id"]
    assert started.json()["status"] == "queued"
    assert started.json()["number"] == p.validation_runs.count()  # counted within the project
    validation.execute_run(run_id, heartbeat=False)
    polled = client.get(f"{API}/projects/{p.pk}/runs/{run_id}", **headers).json()
    assert polled["status"] == "passed"
    results = client.get(f"{API}/projects/{p.pk}/runs/{run_id}/results", **headers).json()
    assert [s["name"] for s in results["stages"]] == [
        "connectivity",
        "schema",
        "mapping",
        "reconciliation",
    ]
    exported = client.get(f"{API}/projects/{p.pk}/connections/{c.pk}/mapping?fmt=csv", **headers)
    assert exported["Content-Type"].startswith("text/csv") and b"trim | lower" in exported.content
    before = FieldMapping.objects.filter(connection=c).count()
    from django.core.files.uploadedfile import SimpleUploadedFile

    replaced = client.post(
        f"{API}/projects/{p.pk}/connections/{c.pk}/mapping",
        {"file": SimpleUploadedFile("m.csv", exported.content), "mode": "replace"},
        **headers,
    )
    assert replaced.json() == {
        "imported": before,
        "mode": "replace",
        "connections": [
            {
                "connection_id": c.pk,
                "source": c.source.name,
                "target": c.target.name,
                "created": False,
                "imported": before,
            }
        ],
    }
    bad = client.post(
        f"{API}/projects/{p.pk}/connections/{c.pk}/mapping",
        {"file": SimpleUploadedFile("m.csv", b"nonsense\n1\n")},
        **headers,
    )
    assert bad.status_code == 400 and bad.json()["problems"]
    assert FieldMapping.objects.filter(connection=c).count() == before
    pdf = client.get(f"{API}/projects/{p.pk}/runbook.pdf", **headers)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # The gate fails when something blocks.
    from planner.models import ApproverRequirement

    ApproverRequirement.objects.filter(project=p, step=1).delete()
    verdict = client.get(f"{API}/projects/{p.pk}/verdict", **headers).json()
    assert verdict["ready"] is False and verdict["reasons"][0]["href"].startswith(
        "http://testserver/"
    )


def test_tokens_are_created_once_shown_and_revoked_on_the_user_page(db):
    user = UserFactory()
    client = client_for(user)
    posted = client.post(reverse("planner:api_tokens"), {"name": "CI deploy gate"})
    # Redirect after post: refreshing the page that shows the token cannot post again.
    assert posted.status_code == 302 and posted["Location"] == reverse("planner:api_tokens")
    token = ApiToken.objects.get(user=user)
    page = client.get(posted["Location"])
    assert b"shown once" in page.content and b'data-testid="new-token"' in page.content
    shown = page.content.decode().split('data-testid="new-token"')[1]
    assert token.prefix in shown
    again = client.get(reverse("planner:api_tokens"))
    assert b'data-testid="new-token"' not in again.content
    assert ApiToken.objects.filter(user=user).count() == 1
    # The session holds the secret only until it is shown.
    assert all(token.prefix not in str(v) for v in client.session.values())
    assert client.post(reverse("planner:api_tokens"), {"name": ""}).status_code == 200
    other = UserFactory()
    client_for(other).post(reverse("planner:api_tokens"), {"revoke": token.pk})
    token.refresh_from_db()
    assert token.revoked_at is None  # not theirs
    client.post(reverse("planner:api_tokens"), {"revoke": token.pk})
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_the_openapi_schema_is_served(client):
    schema = client.get(f"{API}/openapi.json").json()
    assert "/api/projects/{project_id}/verdict" in schema["paths"]
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"


schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", get_wsgi_application())


@pytest.fixture
def fuzz_world(world):
    """As Django's test client does: requests through the WSGI app must not close the test's
    database connection (PostgreSQL would lose the test transaction)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    token = bearer(world["project"].owner)["HTTP_AUTHORIZATION"]
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {**world, "auth": token}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_never_answers_500(case, fuzz_world):
    case.headers = {**(case.headers or {}), "Authorization": fuzz_world["auth"]}
    if case.path_parameters and "project_id" in case.path_parameters:
        case.path_parameters["project_id"] = fuzz_world["project"].pk
    response = case.call()
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])


def test_the_openapi_schema_names_each_response_code_once():
    # Swagger refuses a document whose JSON repeats a key ("duplicated mapping key").
    from planner.api.views import api

    for path, operations in api.get_openapi_schema()["paths"].items():
        for method, operation in operations.items():
            codes = [str(code) for code in operation.get("responses", {})]
            assert len(codes) == len(set(codes)), (path, method, codes)


def test_the_api_docs_load_only_same_origin_assets_that_exist(live_server, db):
    """No CDN: the docs work on a machine without internet, under the app's CSP."""
    client = client_for(UserFactory())
    page = client.get("/api/docs")
    assert page.status_code == 200
    csp = page["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "script-src 'self'" in csp
    html = page.content.decode()
    assets = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert any(a.endswith("swagger-ui.css") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        with urllib.request.urlopen(live_server.url + asset) as response:
            assert response.status == 200, asset
            assert len(response.read()) > 0, asset
    # No inline script: only the settings as JSON data, which the browser never runs.
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
