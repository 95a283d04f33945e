"""Connection settings of a system: the form, secrets that never come back, file uploads,
"Test connection", and the outbound guard's allow-list from settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from planner.models import RunStage, SystemEndpoint
from planner.runs import secrets
from planner.runs import service as validation
from tests.conftest import HTMX, client_for
from tests.connectors import Reply, serve
from tests.factories import (
    ConnectionFactory,
    FieldMappingFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "pa55-Zq8!-never-shown"
PG = {
    "kind": "postgres",
    "host": "db.example.com",
    "port": "5432",
    "database": "billing",
    "user": "reader",
    "dataset": "public.invoices",
    "key_fields": "id",
    "sslmode": "require",
}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def system(project):
    return SystemFactory(project=project, name="Billing")


def settings_url(system):
    return reverse("planner:system_settings", args=[system.project_id, system.pk])


def conn_test_url(system):
    return reverse("planner:system_test", args=[system.project_id, system.pk])


def save(client, system, data, **extra):
    return client.post(settings_url(system), data, **extra)


def test_saving_database_settings_encrypts_the_password(owner_client, system):
    response = save(owner_client, system, {**PG, "password": SECRET})
    assert response.status_code == 302
    ep = SystemEndpoint.objects.get(system=system)
    assert ep.config == {
        "host": "db.example.com",
        "port": 5432,
        "database": "billing",
        "user": "reader",
        "sslmode": "require",
    }
    assert SECRET not in ep.secrets_token and SECRET not in str(ep.config)
    assert secrets.decrypt_json(ep.secrets_token) == {"password": SECRET}
    assert ep.secrets_set == ["password"]
    assert ep.dataset == "public.invoices"


def test_a_blank_secret_keeps_the_stored_one_a_new_one_replaces_it(owner_client, system):
    save(owner_client, system, {**PG, "password": SECRET})
    ep = SystemEndpoint.objects.get(system=system)
    save(owner_client, system, {**PG, "host": "db2.example.com", "expected_version": ep.version})
    ep.refresh_from_db()
    assert ep.config["host"] == "db2.example.com"
    assert secrets.decrypt_json(ep.secrets_token) == {"password": SECRET}
    save(owner_client, system, {**PG, "password": "other", "expected_version": ep.version})
    ep.refresh_from_db()
    assert secrets.decrypt_json(ep.secrets_token) == {"password": "other"}
    save(owner_client, system, {**PG, "clear_secrets": "on", "expected_version": ep.version})
    ep.refresh_from_db()
    assert (ep.secrets_token, ep.secrets_set) == ("", [])


def test_the_secret_never_appears_in_any_response_or_the_history(owner_client, system):
    save(owner_client, system, {**PG, "password": SECRET})
    ep = SystemEndpoint.objects.get(system=system)
    save(owner_client, system, {**PG, "password": SECRET + "2", "expected_version": ep.version})
    project = system.project
    pages = [
        settings_url(system),
        reverse("planner:runs", args=[project.pk]),
        reverse("planner:history", args=[project.pk]),
        reverse("planner:history_object", args=[project.pk, "endpoint", ep.pk]),
        reverse("planner:inventory", args=[project.pk]),
    ]
    bodies = [owner_client.get(url).content for url in pages]
    bodies.append(owner_client.post(conn_test_url(system), {**PG}, **HTMX).content)
    bodies.append(save(owner_client, system, {**PG, "port": "x"}).content)  # invalid: re-rendered
    for body in bodies:
        assert SECRET.encode() not in body
        assert ep.secrets_token.encode() not in body
    html = bodies[0].decode()
    assert "password set" in html and "Set — leave empty to keep it." in html
    # The history tables have no secret column at all.
    historical = SystemEndpoint.history.model
    assert "secrets_token" not in {f.name for f in historical._meta.fields}
    for row in historical.objects.values():
        assert SECRET not in str(row)


def test_the_history_records_which_secrets_are_set_not_their_values(owner_client, system):
    save(owner_client, system, {**PG, "password": SECRET})
    html = owner_client.get(reverse("planner:history", args=[system.project_id])).content
    assert b"Connection settings: Billing (PostgreSQL)" in html


def test_missing_fields_are_named(owner_client, system):
    response = save(owner_client, system, {"kind": "postgres", "key_fields": ""})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Host: Required for PostgreSQL." in html
    assert "Database: Required for PostgreSQL." in html
    assert "Dataset: Give a table name or a SELECT query." in html
    assert "Key field(s): Name the key field(s), separated by commas." in html
    assert not SystemEndpoint.objects.exists()


def test_a_query_that_writes_is_refused_on_the_dataset_field(owner_client, system):
    response = save(owner_client, system, {**PG, "dataset": "select 1; delete from invoices"})
    assert "Dataset: The query must be a single SELECT statement." in response.content.decode()
    response = save(owner_client, system, {**PG, "dataset": "with x as (delete from t) select 1"})
    assert "is not allowed" in response.content.decode()


def test_credential_headers_must_use_the_encrypted_fields(owner_client, system):
    data = {
        "kind": "http_json",
        "base_url": "https://api.example.com",
        "dataset": "/v1/items",
        "key_fields": "id",
        "headers": "Accept: application/json\nAuthorization: Bearer abc",
    }
    html = save(owner_client, system, data).content.decode()
    assert "Extra headers: Line 2: &#x27;Authorization&#x27; carries credentials" in html
    data["headers"] = "Accept: application/json"
    data["auth"] = "bearer"
    html = save(owner_client, system, data).content.decode()
    assert "Token: Required for Bearer token." in html
    data["token"] = SECRET
    assert save(owner_client, system, data).status_code == 302
    ep = SystemEndpoint.objects.get(system=system)
    assert ep.config["headers"] == {"Accept": "application/json"}
    assert secrets.decrypt_json(ep.secrets_token) == {"token": SECRET}


def test_an_uploaded_file_is_stored_privately_and_never_served(owner_client, system, media):
    upload = SimpleUploadedFile("customers.csv", b"id,name\n1,Ada\n", content_type="text/csv")
    response = save(owner_client, system, {"kind": "file", "key_fields": "id", "upload": upload})
    assert response.status_code == 302
    ep = SystemEndpoint.objects.get(system=system)
    assert ep.upload_name == "customers.csv"
    path = Path(ep.upload.path)
    assert path.is_relative_to(media / "private") and path.read_bytes() == b"id,name\n1,Ada\n"
    with pytest.raises(ValueError, match="no public URL"):
        ep.upload.url  # noqa: B018
    assert owner_client.get(f"/media/private/{ep.upload.name}").status_code == 404
    # Replacing the file removes the old one.
    upload = SimpleUploadedFile("customers2.csv", b"id,name\n2,Grace\n")
    save(
        owner_client,
        system,
        {"kind": "file", "key_fields": "id", "upload": upload, "expected_version": ep.version},
    )
    assert not path.exists()
    ep.refresh_from_db()
    assert ep.upload_name == "customers2.csv"


def test_a_sqlite_upload_must_be_a_sqlite_file(owner_client, system):
    upload = SimpleUploadedFile("x.db", b"not a database")
    html = save(
        owner_client,
        system,
        {"kind": "sqlite", "dataset": "t", "key_fields": "id", "upload": upload},
    ).content.decode()
    assert "File: This is not a SQLite database file." in html
    html = save(owner_client, system, {"kind": "file", "key_fields": "id"}).content.decode()
    assert "File: Upload the CSV, JSON or XLSX file." in html


def test_viewers_see_the_settings_but_cannot_change_them(project, member, system):
    SystemEndpointFactory(system=system)
    viewer = client_for(member("viewer"))
    html = viewer.get(settings_url(system)).content.decode()
    assert "Your role can view these settings but not change them." in html
    assert '<form method="post" enctype' not in html
    assert viewer.post(settings_url(system), {**PG}).status_code == 403
    assert viewer.post(conn_test_url(system), {**PG}).status_code == 403


def test_a_concurrent_edit_is_not_lost(owner_client, system):
    save(owner_client, system, {**PG, "password": SECRET})
    ep = SystemEndpoint.objects.get(system=system)
    save(owner_client, system, {**PG, "host": "first.example.com", "expected_version": ep.version})
    html = save(
        owner_client, system, {**PG, "host": "second.example.com", "expected_version": ep.version}
    ).content.decode()
    assert "Someone else saved these settings while you were editing" in html
    ep.refresh_from_db()
    assert ep.config["host"] == "first.example.com"


# ---------------------------------------------------------------------------------------------
# Test connection


def test_test_connection_shows_latency_fields_and_missing_mapped_fields(owner_client, system):
    source = SystemFactory(project=system.project, name="CRM")
    connection = ConnectionFactory(project=system.project, source=source, target=system)
    FieldMappingFactory(project=system.project, connection=connection, target_field="name")
    FieldMappingFactory(project=system.project, connection=connection, target_field="vat_no")
    upload = SimpleUploadedFile("billing.csv", b"id,name\n1,Ada\n")
    response = owner_client.post(
        conn_test_url(system), {"kind": "file", "key_fields": "id", "upload": upload}, **HTMX
    )
    html = response.content.decode()
    assert "✓ Connected" in html and " ms and read one record" in html
    assert '2 fields seen:</strong> <span class="mono">id, name</span>' in html
    assert "Mapped fields this system does not have" in html
    assert "vat_no" in html and "CRM → Billing" in html
    assert not SystemEndpoint.objects.exists()  # testing saves nothing


def test_testing_the_saved_settings_remembers_the_result(owner_client, system):
    ep = SystemEndpointFactory(system=system, csv="id,name\n1,Ada\n")
    data = {"kind": "file", "key_fields": "id", "infer_types": "on", "expected_version": ep.version}
    html = owner_client.post(conn_test_url(system), data, **HTMX).content.decode()
    assert "✓ Connected" in html
    ep.refresh_from_db()
    assert ep.last_test["ok"] is True and ep.last_tested_at is not None
    assert ep.version == 1 and ep.history.count() == 1  # a test is not an edit


def test_test_connection_reports_invalid_settings_by_field(owner_client, system):
    html = owner_client.post(conn_test_url(system), {"kind": "mysql"}, **HTMX).content.decode()
    assert "Fix the settings first" in html and "Host: Required for MySQL / MariaDB." in html


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("http://169.254.169.254/latest", "link-local address"),
        ("http://10.0.0.1", "private network address"),
        ("http://127.0.0.1:9", "loopback address"),
        ("http://localhost:9", "loopback address"),  # a DNS name, checked after resolution
    ],
)
def test_test_connection_refuses_private_and_metadata_addresses(
    owner_client, system, base_url, reason
):
    data = {"kind": "http_json", "base_url": base_url, "dataset": "/x", "key_fields": "id"}
    html = owner_client.post(conn_test_url(system), data, **HTMX).content.decode()
    assert "✗ Connection failed" in html
    assert "refused" in html and reason in html


def api(req):
    return Reply(body={"items": [{"id": 1, "name": "Ada"}]})


def test_the_allow_list_setting_is_applied_by_test_connection(owner_client, system, settings):
    with serve(api) as server:
        data = {
            "kind": "http_json",
            "base_url": server.url,
            "dataset": "/customers",
            "records_path": "$.items",
            "key_fields": "id",
        }
        settings.AETHON_OUTBOUND_ALLOW_HOSTS = []
        refused = owner_client.post(conn_test_url(system), data, **HTMX).content.decode()
        settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
        allowed = owner_client.post(conn_test_url(system), data, **HTMX).content.decode()
    assert "✗ Connection failed" in refused and "loopback" in refused
    assert "✓ Connected" in allowed and "id, name" in allowed


def test_the_allow_list_setting_is_applied_by_runs(db, settings, monkeypatch):
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    project = ProjectFactory()
    source, target = SystemFactory(project=project), SystemFactory(project=project)
    SystemEndpointFactory(system=target, csv="id,name\n1,Ada\n")
    connection = ConnectionFactory(project=project, source=source, target=target)
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="name",
        target_field="name",
        rule="trim",
    )
    with serve(api) as server:
        SystemEndpoint.objects.create(
            project=project,
            system=source,
            kind="http_json",
            key_fields="id",
            config={"base_url": server.url, "records_path": "$.items"},
            dataset="/customers",
        )

        def run():
            r = validation.start_validation_run(connection, None)
            validation.execute_run(r.pk, heartbeat=False)
            return r.stages.get(name="connectivity")

        settings.AETHON_OUTBOUND_ALLOW_HOSTS = []
        refused = run()
        settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
        allowed = run()
    assert refused.status == RunStage.Status.FAILED and "loopback" in refused.error
    assert allowed.status == RunStage.Status.PASSED
    allowed.run.refresh_from_db()
    assert allowed.run.status == "passed", allowed.run.error


def test_the_allow_list_comes_from_the_environment():
    env = {**os.environ, "AETHON_OUTBOUND_ALLOW_HOSTS": "127.0.0.1, db.internal:5432,10.1.0.0/16"}
    code = (
        "import django; django.setup(); from planner.runs.endpoints import guard_policy;"
        "print(sorted(guard_policy().allow_hosts))"
    )
    env["DJANGO_SETTINGS_MODULE"] = "aethon.settings"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['10.1.0.0/16', '127.0.0.1', 'db.internal:5432']"


def test_the_project_of_the_url_must_own_the_system(system):
    other = ProjectFactory()
    client = client_for(other.owner)
    url = reverse("planner:system_settings", args=[other.pk, system.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {**PG}).status_code == 404


def test_a_secret_echoed_by_a_failing_system_never_reaches_the_run_page(
    db, settings, monkeypatch, caplog
):
    """A server that puts the token in its error body: the run stores and shows it masked."""
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    project = ProjectFactory()
    source, target = SystemFactory(project=project), SystemFactory(project=project)
    SystemEndpointFactory(system=target, csv="id,name\n1,Ada\n")
    connection = ConnectionFactory(project=project, source=source, target=target)

    def denied(req):
        return Reply(401, body=f"bad credentials: {req.headers.get('authorization')}".encode())

    with serve(denied) as server:
        SystemEndpoint.objects.create(
            project=project,
            system=source,
            kind="http_json",
            key_fields="id",
            config={"base_url": server.url, "auth": "bearer"},
            dataset="/customers",
            secrets_token=secrets.encrypt_json({"token": SECRET}),
            secrets_set=["token"],
        )
        run = validation.start_validation_run(connection, None)
        validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    stored = str(run.error) + str([(s.error, s.figures) for s in run.stages.all()])
    assert "401" in stored and "***" in stored
    assert SECRET not in stored
    page = (
        client_for(project.owner)
        .get(reverse("planner:run_show", args=[project.pk, run.pk]))
        .content.decode()
    )
    assert "401" in page and SECRET not in page
    assert SECRET not in caplog.text
