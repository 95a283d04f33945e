"""Connection settings of a system: the form, secrets that never come back, file uploads,
"Test connection", and the outbound guard's allow-list from settings."""

import base64
import contextlib
import hashlib
import hmac
import os
import socketserver
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from django.urls import resolve, reverse
from django.views.debug import ExceptionReporter

from planner.api.tokens import create_token
from planner.models import RunStage, SystemEndpoint
from planner.runs import secrets
from planner.runs import service as validation
from planner.runs.endpoint_forms import EndpointForm, is_credential_header
from planner.runs.endpoints import seal_secrets
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


def stored_secrets(ep):
    return secrets.unseal(ep.secrets_token).values


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
    assert stored_secrets(ep) == {"password": SECRET}
    assert ep.secrets_set == ["password"]
    assert ep.dataset == "public.invoices"


def test_a_blank_secret_keeps_the_stored_one_a_new_one_replaces_it(owner_client, system):
    save(owner_client, system, {**PG, "password": SECRET})
    ep = SystemEndpoint.objects.get(system=system)
    # Same server, database and user: the password stays (a new destination drops it, below).
    same_server = {**PG, "schema": "billing", "dataset": "invoices", "sslmode": "verify-full"}
    save(owner_client, system, {**same_server, "expected_version": ep.version})
    ep.refresh_from_db()
    assert ep.config["schema"] == "billing"
    assert stored_secrets(ep) == {"password": SECRET}
    save(owner_client, system, {**PG, "password": "other", "expected_version": ep.version})
    ep.refresh_from_db()
    assert stored_secrets(ep) == {"password": "other"}
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
    assert stored_secrets(ep) == {"token": SECRET}


def test_a_password_in_the_url_is_refused_and_never_stored(owner_client, system):
    data = {
        "kind": "http_json",
        "base_url": f"https://alice:{SECRET}@api.example.com",
        "dataset": "/v1/items",
        "key_fields": "id",
    }
    html = save(owner_client, system, data).content.decode()
    assert "A URL must not hold a user name or password" in html
    assert SECRET not in html
    assert not SystemEndpoint.objects.filter(system=system).exists()
    data.update(base_url="https://api.example.com", dataset=f"//bob:{SECRET}@api.example.com/x")
    html = save(owner_client, system, data).content.decode()
    assert "A URL must not hold a user name or password" in html
    assert not SystemEndpoint.objects.filter(system=system).exists()


def test_a_malformed_csv_upload_is_refused_with_the_line_and_nothing_is_saved(
    owner_client, system, media
):
    upload = SimpleUploadedFile("customers.csv", b"id,name\n1,Ada\n2,Bob,Smith\n")
    response = save(owner_client, system, {"kind": "file", "key_fields": "id", "upload": upload})
    html = response.content.decode()
    assert response.status_code == 200
    assert "This CSV file is malformed. Line 3, column 3: 3 fields where the header has 2" in html
    assert not SystemEndpoint.objects.exists()
    # The delimiter chosen in the form is the one checked.
    upload = SimpleUploadedFile("customers.csv", b"id;name\n1;Ada, Countess\n")
    data = {"kind": "file", "key_fields": "id", "delimiter": ";", "upload": upload}
    assert save(owner_client, system, data).status_code == 302
    assert SystemEndpoint.objects.get().upload_name == "customers.csv"


def test_a_bad_file_stored_earlier_gets_a_plain_message_from_test_connection(owner_client, system):
    ep = SystemEndpointFactory(system=system, csv="id,name\n1,Ada\n2,Bob,Smith\n")
    data = {"kind": "file", "key_fields": "id", "infer_types": "on", "expected_version": ep.version}
    html = owner_client.post(conn_test_url(system), data, **HTMX).content.decode()
    assert "✗ Connection failed" in html
    assert "The CSV file cannot be read. Line 3, column 3: 3 fields where the header has 2" in html
    assert "infer_schema_length" not in html and "schema_overrides" not in html


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
    save(owner_client, system, {**PG, "schema": "first", "expected_version": ep.version})
    html = save(
        owner_client, system, {**PG, "schema": "second", "expected_version": ep.version}
    ).content.decode()
    assert "Someone else saved these settings while you were editing" in html
    ep.refresh_from_db()
    assert ep.config["schema"] == "first"


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
    # The status at the top of the page follows at once, out of band.
    oob = html[html.index('<div id="endpoint-status" hx-swap-oob="true">') :]
    assert "tested OK" in oob and 'data-testid="not-recorded"' not in html
    # The runs page no longer says "never".
    runs = owner_client.get(reverse("planner:runs", args=[system.project_id])).content.decode()
    row = runs[runs.index(f'id="system-{system.pk}"') :].split("</tr>")[0]
    assert "OK" in row and "never" not in row


def test_testing_values_that_differ_from_the_saved_ones_says_it_keeps_no_result(
    owner_client, system
):
    ep = SystemEndpointFactory(system=system, csv="id,name\n1,Ada\n")
    data = {"kind": "file", "key_fields": "name", "expected_version": ep.version}
    html = owner_client.post(conn_test_url(system), data, **HTMX).content.decode()
    assert 'data-testid="not-recorded"' in html and "hx-swap-oob" not in html
    ep.refresh_from_db()
    assert ep.last_tested_at is None


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
            secrets_token=seal_secrets(
                "http_json", {"base_url": server.url, "auth": "bearer"}, {"token": SECRET}
            ),
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


# ---------------------------------------------------------------------------------------------
# A stored secret is bound to the destination it was entered for


class FakePostgres:
    """Just enough of the PostgreSQL wire protocol to see what a client sends when it logs in.

    ``method="password"`` asks for the password in clear text, as a hostile server would.
    ``method="scram"`` checks a SCRAM-SHA-256 proof against ``password`` without learning it,
    so a test can tell that the client knew the right password.
    """

    def __init__(self, method: str = "password", password: str = "") -> None:
        self.method, self.password = method, password
        self.logins: list[dict[str, str]] = []  # startup parameters of every login attempt
        self.cleartext: list[str] = []  # passwords received in clear text
        self.proofs: list[bool] = []  # SCRAM proofs received: right password or not
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError, ValueError, struct.error):
                    outer._session(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def __enter__(self) -> "FakePostgres":
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _read(sock, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ValueError("client went away")
            data += chunk
        return data

    def _message(self, sock) -> bytes:
        self._read(sock, 1)  # the message type
        (length,) = struct.unpack("!i", self._read(sock, 4))
        return self._read(sock, length - 4)

    @staticmethod
    def _send(sock, kind: bytes, body: bytes) -> None:
        sock.sendall(kind + struct.pack("!i", len(body) + 4) + body)

    def _session(self, sock) -> None:
        while True:  # SSL and GSS encryption requests are declined; then the startup message
            (length,) = struct.unpack("!i", self._read(sock, 4))
            body = self._read(sock, length - 4)
            if struct.unpack("!i", body[:4])[0] not in (80877103, 80877104):
                break
            sock.sendall(b"N")
        words = body[4:].split(b"\x00")
        self.logins.append(
            {k.decode(): v.decode() for k, v in zip(words[::2], words[1::2], strict=False) if k}
        )
        if self.method == "password":
            self._send(sock, b"R", struct.pack("!i", 3))
            self.cleartext.append(self._message(sock).rstrip(b"\x00").decode())
        else:
            self._scram(sock)
        error = b"SFATAL\x00VFATAL\x00C28P01\x00Mtest server: login refused\x00\x00"
        self._send(sock, b"E", error)

    def _scram(self, sock) -> None:
        self._send(sock, b"R", struct.pack("!i", 10) + b"SCRAM-SHA-256\x00\x00")
        rest = self._message(sock).split(b"\x00", 1)[1]
        client_first = rest[4 : 4 + struct.unpack("!i", rest[:4])[0]].decode()
        bare = client_first.split(",", 2)[2]
        nonce = dict(p.split("=", 1) for p in bare.split(","))["r"] + "srv"
        salt = os.urandom(16)
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i=4096"
        self._send(sock, b"R", struct.pack("!i", 11) + server_first.encode())
        without_proof, _, proof = self._message(sock).decode().rpartition(",p=")
        auth_message = f"{bare},{server_first},{without_proof}".encode()
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, 4096)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        recovered = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        self.proofs.append(hashlib.sha256(recovered).digest() == stored_key)


CRM = {
    "kind": "postgres",
    "host": "db.example",
    "port": "5432",
    "database": "crm",
    "user": "crm_reader",
    "dataset": "public.accounts",
    "key_fields": "id",
    "sslmode": "disable",
}
HTTP = {"kind": "http_json", "dataset": "/customers", "records_path": "$.items", "key_fields": "id"}


def seen_by(server) -> str:
    """Everything the listener received: paths, queries, headers, and decoded Basic pairs."""
    out = []
    for req in server.requests:
        out += [req.path, str(req.query), *req.headers.values()]
        for value in req.headers.values():
            if value.lower().startswith("basic "):
                out.append(base64.b64decode(value[6:]).decode(errors="replace"))
    return "\n".join(out)


def connectivity_of(system):
    """Run a validation of a connection from `system` to a CSV target: its connectivity stage."""
    project = system.project
    target = SystemFactory(project=project, name="Target")
    SystemEndpointFactory(system=target, csv="id,name\n1,Ada\n")
    connection = ConnectionFactory(project=project, source=system, target=target)
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="name",
        target_field="name",
        rule="trim",
    )
    run = validation.start_validation_run(connection, None)
    validation.execute_run(run.pk, heartbeat=False)
    return run.stages.get(name="connectivity")


@pytest.fixture
def loopback_allowed(settings, monkeypatch):
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    monkeypatch.setattr(validation, "dispatch", lambda run: None)


@pytest.mark.parametrize(
    ("changed", "stored", "attack", "entered_for"),
    [
        ("host", {"host": "db.example"}, {"host": "127.0.0.1"}, "db.example:{port}/crm"),
        ("port", {"port": "5432"}, {}, "127.0.0.1:5432/crm"),
        ("user", {}, {"user": "postgres"}, "127.0.0.1:{port}/crm"),
        ("database", {}, {"database": "postgres"}, "127.0.0.1:{port}/crm"),
    ],
)
def test_a_stored_password_never_follows_a_changed_postgres_destination(
    owner_client, system, loopback_allowed, changed, stored, attack, entered_for
):
    """The attack: leave the password blank, point the settings at a server that asks for it
    in clear text, press "Test connection" (or Save): that server must not even be dialled."""
    with FakePostgres("password") as fake:
        here = {**CRM, "host": "127.0.0.1", "port": str(fake.port)}
        save(owner_client, system, {**here, **stored, "password": SECRET})
        ep = SystemEndpoint.objects.get(system=system)
        before = (ep.config, ep.secrets_token, ep.version)
        hostile = {**here, **attack, "expected_version": ep.version}
        tested = owner_client.post(conn_test_url(system), hostile, **HTMX).content.decode()
        saved = save(owner_client, system, hostile).content.decode()
    assert fake.logins == [] and fake.cleartext == []
    where = entered_for.format(port=fake.port)
    message = (
        f"The password was entered for {where} as crm_reader; you changed the {changed} —"
        " enter it again."
    )
    assert f"Password: {message}" in tested
    assert f"Password: {message}" in saved
    ep.refresh_from_db()
    assert (ep.config, ep.secrets_token, ep.version) == before  # the refused save changed nothing


def test_typing_the_password_again_or_removing_it_accepts_the_new_destination(owner_client, system):
    save(owner_client, system, {**CRM, "password": SECRET})
    ep = SystemEndpoint.objects.get(system=system)
    moved = {**CRM, "host": "db2.example", "expected_version": ep.version}
    assert save(owner_client, system, {**moved, "password": "new-pass"}).status_code == 302
    ep.refresh_from_db()
    assert stored_secrets(ep) == {"password": "new-pass"}
    moved = {**CRM, "host": "db3.example", "expected_version": ep.version, "clear_secrets": "on"}
    assert save(owner_client, system, moved).status_code == 302
    ep.refresh_from_db()
    assert (ep.config["host"], ep.secrets_token, ep.secrets_set) == ("db3.example", "", [])


def test_a_database_password_is_not_reused_for_http_basic_authentication(
    owner_client, system, loopback_allowed
):
    """Changing the kind and the authentication: the PostgreSQL password must not become the
    Basic password sent to an HTTP listener."""
    save(owner_client, system, {**CRM, "password": SECRET})
    ep = SystemEndpoint.objects.get(system=system)
    with serve(api) as server:
        hostile = {
            **HTTP,
            "base_url": server.url,
            "auth": "basic",
            "username": "crm_reader",
            "expected_version": ep.version,
        }
        tested = owner_client.post(conn_test_url(system), hostile, **HTMX).content.decode()
        saved = save(owner_client, system, hostile).content.decode()
    assert SECRET not in seen_by(server)
    message = (
        "Password: The password was entered for db.example:5432/crm as crm_reader; you changed"
        " the connection kind — enter it again."
    )
    assert message in tested and message in saved
    assert SystemEndpoint.objects.get(system=system).kind == "postgres"


@pytest.mark.parametrize(
    ("stored", "attack", "message"),
    [
        (
            {"base_url": "https://api.example.com/v1/", "auth": "bearer", "token": SECRET},
            {"base_url": "{url}"},
            "Token: The token was entered for https://api.example.com/v1 (Bearer token); you"
            " changed the base URL — enter it again.",
        ),
        (
            {
                "base_url": "{url}",
                "auth": "api_key",
                "api_key_header": "X-API-Key",
                "api_key": SECRET,
            },
            {"api_key_header": "X-Debug-Echo"},
            "API key: The API key was entered for {url} in header x-api-key; you changed the"
            " API-key header — enter it again.",
        ),
        (
            {"base_url": "{url}", "auth": "basic", "username": "ann", "password": SECRET},
            {"username": "admin"},
            "Password: The password was entered for {url} as ann (Basic); you changed the"
            " username — enter it again.",
        ),
        (
            {"base_url": "{url}", "auth": "bearer", "token": SECRET},
            {"auth": "basic", "username": "ann"},
            "Password: Required for Basic (user + password).",
        ),
        (
            {"base_url": "https://api.example.com", "headers": f"Private-Token: {SECRET}"},
            {"base_url": "{url}", "headers": "Private-Token:"},
            "Extra headers: The Private-Token header was entered for https://api.example.com;"
            " you changed the base URL — enter it again.",
        ),
        (
            {"base_url": "{url}", "headers": f"Private-Token: {SECRET}"},
            {"headers": "X-Echo-Token:"},
            "Extra headers: Line 1: give the value of X-Echo-Token (it is stored encrypted).",
        ),
    ],
    ids=[
        "base-url",
        "api-key-header",
        "basic-username",
        "bearer-to-basic",
        "header-base-url",
        "header-renamed",
    ],
)
def test_a_stored_http_secret_never_follows_a_changed_destination(
    owner_client, system, loopback_allowed, stored, attack, message
):
    """A loopback listener stands for the attacker's server: it must never see the secret,
    whether the editor presses "Test connection" or saves."""
    with serve(api) as server:

        def fill(values):
            return {
                k: v.format(url=server.url) if k == "base_url" else v for k, v in values.items()
            }

        assert save(owner_client, system, {**HTTP, **fill(stored)}).status_code == 302
        ep = SystemEndpoint.objects.get(system=system)
        before = (ep.config, ep.secrets_token, ep.version)
        hostile = {**HTTP, **fill(stored), **fill(attack), "expected_version": ep.version}
        for name in ("token", "password", "api_key"):
            hostile.pop(name, None)  # the editor leaves the secret fields blank
        tested = owner_client.post(conn_test_url(system), hostile, **HTMX).content.decode()
        saved = save(owner_client, system, hostile).content.decode()
    assert SECRET not in seen_by(server)
    expected = message.format(url=server.url)
    assert expected in tested
    assert expected in saved
    ep.refresh_from_db()
    assert (ep.config, ep.secrets_token, ep.version) == before


def echo(req):
    return Reply(body={"items": [{"id": 1, "name": "Ada"}]})


def test_keeping_the_destination_keeps_http_secrets_working(
    owner_client, system, loopback_allowed, caplog
):
    """No regression: blank secret fields with the same destination still authenticate, in a
    test, after a save, and in a run; and the custom credential header goes with them."""
    header_secret = "hdr-Secret-77f1"
    with serve(echo) as server:
        data = {
            **HTTP,
            "base_url": server.url,
            "auth": "bearer",
            "token": SECRET,
            "headers": f"Accept: application/json\nPrivate-Token: {header_secret}",
        }
        assert save(owner_client, system, data).status_code == 302
        ep = SystemEndpoint.objects.get(system=system)
        kept = {
            **HTTP,
            "base_url": server.url + "/",
            "auth": "bearer",
            "headers": "Accept: application/json\nprivate-token:\nX-Tenant: acme",
            "dataset": "/customers?active=1",
            "expected_version": ep.version,
        }
        tested = owner_client.post(conn_test_url(system), kept, **HTMX).content.decode()
        assert save(owner_client, system, kept).status_code == 302
        stage = connectivity_of(system)
    assert "✓ Connected" in tested
    assert stage.status == RunStage.Status.PASSED, stage.error
    assert len(server.requests) >= 2  # the test, then the run (which also reads the records)
    for req in server.requests:
        assert req.headers["authorization"] == f"Bearer {SECRET}"
        assert req.headers["private-token"] == header_secret
    assert server.requests[-1].headers["x-tenant"] == "acme"
    ep.refresh_from_db()
    assert stored_secrets(ep) == {"token": SECRET, "header:private-token": header_secret}
    assert SECRET not in caplog.text and header_secret not in caplog.text


def test_keeping_the_postgres_destination_keeps_the_password_working(
    owner_client, system, loopback_allowed
):
    """A server that checks a SCRAM proof: the password left blank is still the right one."""
    with FakePostgres("scram", password=SECRET) as fake:
        data = {**CRM, "host": "127.0.0.1", "port": str(fake.port)}
        assert save(owner_client, system, {**data, "password": SECRET}).status_code == 302
        ep = SystemEndpoint.objects.get(system=system)
        kept = {
            **data,
            "dataset": "public.contacts",
            "schema": "public",
            "expected_version": ep.version,
        }
        owner_client.post(conn_test_url(system), kept, **HTMX)
        assert save(owner_client, system, kept).status_code == 302
        connectivity_of(system)
    assert fake.proofs == [True, True]
    assert [login["user"] for login in fake.logins] == ["crm_reader", "crm_reader"]


def test_a_run_refuses_a_secret_whose_destination_changed_outside_the_form(
    owner_client, system, loopback_allowed
):
    """Use time checks the binding too: settings changed behind the form's back (a script, a
    restored backup) fail the connectivity stage instead of sending the token elsewhere."""
    save(
        owner_client,
        system,
        {**HTTP, "base_url": "https://api.example.com", "auth": "bearer", "token": SECRET},
    )
    ep = SystemEndpoint.objects.get(system=system)
    with serve(api) as server:
        SystemEndpoint.objects.filter(pk=ep.pk).update(config={**ep.config, "base_url": server.url})
        stage = connectivity_of(system)
    assert server.requests == []
    assert stage.status == RunStage.Status.FAILED
    assert (
        "The stored token of Billing was entered for https://api.example.com (Bearer token), not"
        " for the current settings (the base URL differs); it was not sent. Enter it again in"
        " the connection settings." in stage.error
    )


def test_a_secret_stored_without_a_destination_is_not_used(owner_client, system, loopback_allowed):
    with serve(api) as server:
        config = {"base_url": server.url, "auth": "bearer", "records_path": "$.items"}
        SystemEndpoint.objects.create(
            project=system.project,
            system=system,
            kind="http_json",
            key_fields="id",
            config=config,
            dataset="/customers",
            secrets_token=secrets.encrypt_json({"token": SECRET}),
            secrets_set=["token"],
        )
        stage = connectivity_of(system)
        tested = owner_client.post(
            conn_test_url(system), {**HTTP, "base_url": server.url, "auth": "bearer"}, **HTMX
        ).content.decode()
    assert SECRET not in seen_by(server)
    assert stage.status == RunStage.Status.FAILED
    assert "The stored token of Billing does not say which server it was entered for" in (
        stage.error
    )
    assert "Token: The token was stored without the server it was entered for" in tested


# ---------------------------------------------------------------------------------------------
# Credential headers: encrypted like the other secrets, never shown back

HEADER_SECRETS = {
    "Private-Token": "glpat-Qx81-secret",
    "X-Auth-Token": "xat-93kd-secret",
    "Cookie": "session=ck-77aa-secret",
}


def test_credential_headers_are_stored_encrypted_and_never_shown(
    owner_client, member, system, caplog
):
    lines = [
        "Accept: application/json",
        *(f"{k}: {v}" for k, v in HEADER_SECRETS.items()),
        "X-Tenant: acme",
    ]
    data = {**HTTP, "base_url": "https://api.example.com", "headers": "\n".join(lines)}
    assert save(owner_client, system, data).status_code == 302
    ep = SystemEndpoint.objects.get(system=system)
    assert ep.config["headers"] == {"Accept": "application/json", "X-Tenant": "acme"}
    assert ep.config["secret_headers"] == ["Private-Token", "X-Auth-Token", "Cookie"]
    assert stored_secrets(ep) == {f"header:{k.lower()}": v for k, v in HEADER_SECRETS.items()}
    # Edit again with one value replaced: the re-rendered invalid form echoes nothing typed.
    retyped = {
        **data,
        "headers": "Private-Token: glpat-NEW-typed-secret\nX-Auth-Token:\nCookie:",
        "port": "1",
        "page_size": "0",
        "expected_version": ep.version,
    }
    project = system.project
    viewer = client_for(member("viewer"))
    bodies = {
        "settings": owner_client.get(settings_url(system)).content,
        "settings (viewer)": viewer.get(settings_url(system)).content,
        "invalid save": save(owner_client, system, retyped).content,
        "invalid test": owner_client.post(conn_test_url(system), retyped, **HTMX).content,
        "history": owner_client.get(reverse("planner:history", args=[project.pk])).content,
        "history of the endpoint": owner_client.get(
            reverse("planner:history_object", args=[project.pk, "endpoint", ep.pk])
        ).content,
        "runs": owner_client.get(reverse("planner:runs", args=[project.pk])).content,
        "inventory": owner_client.get(reverse("planner:inventory", args=[project.pk])).content,
    }
    for where, body in bodies.items():
        for value in [*HEADER_SECRETS.values(), "glpat-NEW-typed-secret", "ck-77aa"]:
            assert value.encode() not in body, f"{value} shown in {where}"
    html = bodies["settings"].decode()
    assert "Private-Token header set" in html and "Cookie header set" in html
    assert "Private-Token:\nX-Auth-Token:\nCookie:" in html  # blank values: kept if left so
    assert "X-Tenant: acme" in html  # ordinary headers stay plain, visible settings
    for row in SystemEndpoint.history.model.objects.values():
        assert not any(v in str(row) for v in HEADER_SECRETS.values())
    assert not any(v in caplog.text for v in HEADER_SECRETS.values())


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("Private-Token", True),
        ("X-Auth-Token", True),
        ("x-api-key", True),
        ("Api-Key", True),
        ("Cookie", True),
        ("X-Session-Id", True),
        ("X-Client-Secret", True),
        ("X-Hub-Signature-256", True),
        ("X-Password", True),
        ("X-Amz-Security-Token", True),
        ("Accept", False),
        ("X-Tenant", False),
        ("User-Agent", False),
        ("X-Request-Id", False),
    ],
)
def test_which_headers_count_as_credentials(name, credential):
    assert is_credential_header(name) is credential


def test_header_lines_that_conflict_or_repeat_are_refused_by_line(owner_client, system):
    base = {**HTTP, "base_url": "https://api.example.com", "auth": "api_key", "api_key": "k-1"}
    html = save(
        owner_client, system, {**base, "headers": "Accept: a\nx-api-key: other-secret"}
    ).content.decode()
    assert "Extra headers: Line 2: x-api-key is the header of the API-key authentication" in html
    html = save(
        owner_client, system, {**base, "headers": "X-Tenant: a\nx-tenant: b"}
    ).content.decode()
    assert "Extra headers: Line 2: x-tenant is given twice." in html
    assert not SystemEndpoint.objects.exists()
    assert "other-secret" not in html


def test_a_credential_header_echoed_by_a_failing_system_is_masked_in_the_run_and_the_api(
    owner_client, system, loopback_allowed, caplog
):
    header_secret = "glpat-echoed-4411"

    def denied(req):
        return Reply(401, body=f"bad token {req.headers.get('private-token')}".encode())

    with serve(denied) as server:
        data = {**HTTP, "base_url": server.url, "headers": f"Private-Token: {header_secret}"}
        assert save(owner_client, system, data).status_code == 302
        stage = connectivity_of(system)
    assert server.requests[0].headers["private-token"] == header_secret  # sent to its server
    run = stage.run
    assert stage.status == RunStage.Status.FAILED and "401" in stage.error
    assert "***" in stage.error
    raw = create_token(system.project.owner, "ci")[1]
    api_run = owner_client.get(
        f"/api/projects/{system.project_id}/runs/{run.pk}", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert api_run.status_code == 200
    results = owner_client.get(
        f"/api/projects/{system.project_id}/runs/{run.pk}/results",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    page = owner_client.get(reverse("planner:run_show", args=[system.project_id, run.pk]))
    for body in (api_run.content, results.content, page.content):
        assert header_secret.encode() not in body
    stored = str(run.error) + str([(s.error, s.figures) for s in run.stages.all()])
    assert header_secret not in stored and header_secret not in caplog.text


def test_an_error_report_of_the_settings_page_hides_every_secret_typed(system, monkeypatch):
    """Django's error reports (mail, Sentry-style handlers) show the POST: secret fields and
    the extra headers, where credential headers are typed, must be masked there."""
    header_secret = "glpat-crash-5150"

    def crash(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(EndpointForm, "save", crash)
    url = settings_url(system)
    data = {
        **HTTP,
        "base_url": "https://api.example.com",
        "auth": "bearer",
        "token": SECRET,
        "headers": f"Private-Token: {header_secret}",
    }
    request = RequestFactory().post(url, data)
    request.user = system.project.owner
    match = resolve(url)
    with pytest.raises(RuntimeError) as info:
        match.func(request, *match.args, **match.kwargs)
    report = ExceptionReporter(request, info.type, info.value, info.tb).get_traceback_text()
    assert "disk full" in report and "https://api.example.com" in report
    assert SECRET not in report and header_secret not in report


def test_an_upload_reaches_its_connector_as_its_own_file_in_storage(db, tmp_path, settings):
    from planner.connectors.base import ConnectorError as BaseError
    from planner.runs.endpoints import open_endpoint

    settings.MEDIA_ROOT = tmp_path / "media"
    outside = tmp_path / "secret.csv"
    outside.write_text("id,secret\n1,x\n")
    endpoint = SystemEndpointFactory(csv="id,name\n1,Ada\n2,Grace\n")
    # A path among the stored settings is never used: only the upload's own is.
    endpoint.config = {"infer_types": True, "path": str(outside)}
    endpoint.save()
    connector = open_endpoint(endpoint)
    assert connector.config.path == endpoint.upload.path
    assert connector.config.content is None
    assert connector.guard.file_roots == (str(Path(endpoint.upload.path).parent),)
    assert connector.count() == 2 and connector.fields() == ["id", "name"]
    # The size cap still holds for a file read from storage.
    settings.AETHON_CONNECTOR_GUARD = {**settings.AETHON_CONNECTOR_GUARD, "max_file_bytes": 10}
    with pytest.raises(BaseError, match="larger than the limit of 10 bytes"):
        open_endpoint(endpoint).count()
