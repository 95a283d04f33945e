"""The connection-settings form of a system: one form, fields shown by connection kind.

Secret fields are write-only: they render empty, a blank submission keeps what is stored, and
the page says only which secrets are set. A stored secret is kept only while the destination
it was entered for stays the same (endpoints.secret_binding): a new host, port, database, user,
base URL or authentication needs the secret typed again, for "Test connection" as for Save.
Extra headers whose name suggests a credential are secrets too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from planner.connectors.csv_check import csv_problem
from planner.connectors.names import MYSQL_SSL_MODES as MYSQL_SSL
from planner.connectors.names import POSTGRES_SSL_MODES as PG_SSL
from planner.connectors.names import ConnectorError, secret_header_key
from planner.models import System, SystemEndpoint
from planner.runs import secrets
from planner.runs.endpoints import (
    AUTH_SECRET,
    SQL_KINDS,
    connector_config,
    describe_destination,
    destination_changes,
    guard_policy,
    is_query,
    seal_secrets,
    secret_binding,
    secret_label,
    the_changes,
    upload_bytes,
)
from planner.web.concurrency import save_versioned

if TYPE_CHECKING:
    from planner.connectors import Connector

# The connectors (polars, sqlglot, drivers) load when a form is checked against a system,
# not when the settings page is imported.

Kind = SystemEndpoint.Kind
DB = (Kind.POSTGRES, Kind.MYSQL)
SECRET_INPUTS = ("password", "token", "api_key")
# Every POST field that can carry a secret value (for sensitive_post_parameters): credential
# headers are typed into the extra headers.
SECRET_FIELDS = (*SECRET_INPUTS, "headers")
# The Authentication setting sets these itself; a second copy in the extra headers would fight it.
AUTH_HEADERS = {"authorization", "proxy-authorization"}
# An extra header whose name contains one of these carries a credential: its value is stored
# encrypted and never shown again. A false positive only hides a harmless value.
CREDENTIAL_WORDS = (
    "token",
    "key",
    "secret",
    "auth",
    "session",
    "cookie",
    "password",
    "passwd",
    "passphrase",
    "signature",
    "credential",
    "jwt",
    "bearer",
)
FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".xlsx", ".xlsm")

# field -> the kinds it applies to (the page shows only those; without JS all are shown).
FIELD_KINDS: dict[str, tuple[str, ...]] = {
    "kind": tuple(Kind),
    "dataset": (*SQL_KINDS, Kind.HTTP_JSON),
    "key_fields": tuple(Kind),
    "host": DB,
    "port": DB,
    "database": DB,
    "user": DB,
    "password": (*DB, Kind.HTTP_JSON),
    "schema": (Kind.POSTGRES,),
    "sslmode": (Kind.POSTGRES,),
    "ssl_mode": (Kind.MYSQL,),
    "upload": (Kind.SQLITE, Kind.FILE),
    "file_format": (Kind.FILE,),
    "delimiter": (Kind.FILE,),
    "sheet": (Kind.FILE,),
    "infer_types": (Kind.FILE,),
    "records_path": (Kind.FILE, Kind.HTTP_JSON),
    "base_url": (Kind.HTTP_JSON,),
    "headers": (Kind.HTTP_JSON,),
    "auth": (Kind.HTTP_JSON,),
    "username": (Kind.HTTP_JSON,),
    "token": (Kind.HTTP_JSON,),
    "api_key": (Kind.HTTP_JSON,),
    "api_key_header": (Kind.HTTP_JSON,),
    "pagination": (Kind.HTTP_JSON,),
    "page_param": (Kind.HTTP_JSON,),
    "size_param": (Kind.HTTP_JSON,),
    "page_size": (Kind.HTTP_JSON,),
    "offset_param": (Kind.HTTP_JSON,),
    "limit_param": (Kind.HTTP_JSON,),
    "cursor_param": (Kind.HTTP_JSON,),
    "cursor_path": (Kind.HTTP_JSON,),
    "total_path": (Kind.HTTP_JSON,),
    "max_pages": (Kind.HTTP_JSON,),
    "clear_secrets": (*DB, Kind.HTTP_JSON),
}
GROUPS = (
    ("What to read", ("kind", "dataset", "key_fields", "upload", "records_path")),
    ("Database server", ("host", "port", "database", "user", "schema", "sslmode", "ssl_mode")),
    ("File", ("file_format", "delimiter", "sheet", "infer_types")),
    (
        "HTTP API",
        (
            "base_url",
            "headers",
            "auth",
            "username",
            "api_key_header",
            "pagination",
            "page_param",
            "size_param",
            "page_size",
            "offset_param",
            "limit_param",
            "cursor_param",
            "cursor_path",
            "total_path",
            "max_pages",
        ),
    ),
    ("Secrets (encrypted, never shown again)", ("password", "token", "api_key", "clear_secrets")),
)
# HTTP fields that matter only for some authentication / pagination styles.
FIELD_AUTH = {
    "username": "basic",
    "password": "basic",
    "token": "bearer",
    "api_key": "api_key",
    "api_key_header": "api_key",
}
FIELD_PAGINATION = {
    "page_param": "page",
    "size_param": "page",
    "page_size": "page offset",
    "offset_param": "offset",
    "limit_param": "offset",
    "cursor_param": "cursor",
    "cursor_path": "cursor",
}
# Non-secret settings stored in SystemEndpoint.config, per kind.
CONFIG_FIELDS: dict[str, tuple[str, ...]] = {
    Kind.POSTGRES: ("host", "port", "database", "user", "schema", "sslmode"),
    Kind.MYSQL: ("host", "port", "database", "user", "ssl_mode"),
    Kind.SQLITE: (),
    Kind.FILE: ("format", "delimiter", "sheet", "records_path", "infer_types"),
    Kind.HTTP_JSON: (
        "base_url",
        "headers",
        "secret_headers",
        "auth",
        "username",
        "api_key_header",
        "pagination",
        "page_param",
        "size_param",
        "page_size",
        "offset_param",
        "limit_param",
        "cursor_param",
        "cursor_path",
        "records_path",
        "total_path",
        "max_pages",
    ),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    Kind.POSTGRES: ("host", "database", "user"),
    Kind.MYSQL: ("host", "database", "user"),
    Kind.SQLITE: (),
    Kind.FILE: (),
    Kind.HTTP_JSON: ("base_url",),
}
HEADERS_HELP = (
    "One 'Name: value' per line. Headers whose name suggests a credential (token, key, secret,"
    " auth, session, cookie, password, signature…) are stored encrypted and never shown again."
)


def is_credential_header(name: str) -> bool:
    lowered = name.strip().lower()
    return any(word in lowered for word in CREDENTIAL_WORDS)


def _choices(values) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


class HeaderLines(forms.Textarea):
    """Header lines with every credential value blanked ("Private-Token:"), whether it was
    stored or just typed into a form that is shown again with errors."""

    def format_value(self, value):
        text = super().format_value(value)
        if not text:
            return text
        out = []
        for line in str(text).splitlines():
            name, sep, _ = line.partition(":")
            if not is_credential_header(name if sep else line):
                out.append(line)
            else:
                # A malformed line that mentions a credential may hold its value: drop it all.
                out.append(f"{name.strip()}:" if sep else "")
        return "\n".join(out)


def _secret() -> forms.CharField:
    return forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False)
    )


class EndpointForm(forms.Form):
    kind = forms.ChoiceField(label="Connection kind", choices=Kind.choices)
    dataset = forms.CharField(
        label="Dataset",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "class": "mono"}),
        help_text="Databases: a table name or one SELECT query. HTTP: the endpoint path, e.g."
        " /v1/customers?status=all.",
    )
    key_fields = forms.CharField(
        label="Key field(s)", max_length=300, help_text="e.g. id, or org_id, number"
    )
    host = forms.CharField(required=False, max_length=255)
    port = forms.IntegerField(required=False, min_value=1, max_value=65535)
    database = forms.CharField(required=False, max_length=255)
    user = forms.CharField(required=False, max_length=255)
    password = _secret()
    schema = forms.CharField(required=False, max_length=255, help_text="PostgreSQL schema.")
    sslmode = forms.ChoiceField(label="SSL mode", choices=_choices(PG_SSL), initial="prefer")
    ssl_mode = forms.ChoiceField(label="SSL", choices=_choices(MYSQL_SSL), initial="disable")
    upload = forms.FileField(
        label="File", required=False, help_text="Stored privately; never served back."
    )
    file_format = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[("", "from the file name"), *_choices(("csv", "json", "ndjson", "xlsx"))],
    )
    delimiter = forms.CharField(required=False, max_length=2, help_text="CSV: default ','.")
    sheet = forms.CharField(required=False, max_length=100, help_text="XLSX: default first.")
    infer_types = forms.BooleanField(
        label="Infer column types",
        required=False,
        initial=True,
        help_text=(
            "Off keeps every value as text. On, keys and codes written with a leading zero "
            "(007) still stay as written."
        ),
    )
    records_path = forms.CharField(
        label="Record selector",
        required=False,
        max_length=200,
        help_text="Where the records are in the JSON, e.g. $.data.items (default: the document).",
    )
    base_url = forms.CharField(label="Base URL", required=False, max_length=500)
    headers = forms.CharField(
        label="Extra headers",
        required=False,
        widget=HeaderLines(attrs={"rows": 3}),
        help_text=HEADERS_HELP,
    )
    auth = forms.ChoiceField(
        label="Authentication",
        choices=[
            ("none", "None"),
            ("bearer", "Bearer token"),
            ("basic", "Basic (user + password)"),
            ("api_key", "API-key header"),
        ],
    )
    username = forms.CharField(required=False, max_length=255, help_text="Basic auth.")
    token = _secret()
    api_key = forms.CharField(
        label="API key", required=False, strip=False, widget=forms.PasswordInput(render_value=False)
    )
    api_key_header = forms.CharField(
        label="API-key header", required=False, max_length=100, initial="X-API-Key"
    )
    pagination = forms.ChoiceField(
        choices=[
            ("none", "None (one response)"),
            ("page", "Page number"),
            ("offset", "Offset"),
            ("cursor", "Cursor"),
            ("link", "Link header"),
        ],
    )
    page_param = forms.CharField(label="Page parameter", required=False, initial="page")
    size_param = forms.CharField(label="Page-size parameter", required=False)
    page_size = forms.IntegerField(required=False, min_value=1, max_value=100_000, initial=100)
    offset_param = forms.CharField(label="Offset parameter", required=False, initial="offset")
    limit_param = forms.CharField(label="Limit parameter", required=False, initial="limit")
    cursor_param = forms.CharField(label="Cursor parameter", required=False, initial="cursor")
    cursor_path = forms.CharField(label="Next-cursor path", required=False, initial="next_cursor")
    total_path = forms.CharField(label="Total path", required=False, help_text="e.g. $.meta.total")
    max_pages = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, initial=1000)
    clear_secrets = forms.BooleanField(label="Remove the stored secrets", required=False)
    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, system: System, endpoint: SystemEndpoint | None, **kwargs) -> None:
        self.system = system
        self.endpoint = endpoint
        if endpoint is not None and not kwargs.get("initial") and not args:
            kwargs["initial"] = _initial(endpoint)
        super().__init__(*args, **kwargs)
        for name in ("sslmode", "ssl_mode", "auth", "pagination"):
            self.fields[name].required = False
        stored = set(self.stored_secret_names)
        for name in SECRET_INPUTS:
            hint = (
                "Set — leave empty to keep it. A new server or user needs it typed again."
                if name in stored
                else "Not set."
            )
            self.fields[name].help_text = hint
        header_labels = [
            secret_label(n, self._stored_header_names)
            for n in self.stored_secret_names
            if n not in SECRET_INPUTS
        ]
        if header_labels:
            self.fields["headers"].help_text = (
                f"{HEADERS_HELP} Set: {', '.join(header_labels)} — leave the value empty to keep"
                " it; a new server needs it typed again."
            )
        self.config: dict[str, Any] = {}
        # Credential header lines of the submission: name -> (line number, value typed).
        self._header_secrets: dict[str, tuple[int, str]] = {}
        self._values: dict[str, str] = {}
        self._sealed_cache: secrets.Sealed | None = None

    # --- what is stored ------------------------------------------------------------------

    @property
    def stored_secret_names(self) -> list[str]:
        return list(self.endpoint.secrets_set) if self.endpoint else []

    @property
    def _stored_header_names(self) -> list[str]:
        return list(self.endpoint.config.get("secret_headers") or []) if self.endpoint else []

    def error_summary(self) -> list[str]:
        """Every error as 'Field label: message', for places that do not show the fields."""
        out = []
        for name, errors in self.errors.items():
            label = "" if name == "__all__" else f"{self[name].label}: "
            out += [f"{label}{e}" for e in errors]
        return out

    def grouped(self) -> list[tuple[str, list[tuple[forms.BoundField, dict[str, str]]]]]:
        """Fields by group, each with the conditions under which the page shows it."""
        return [
            (
                title,
                [
                    (
                        self[name],
                        {
                            "kinds": " ".join(FIELD_KINDS[name]),
                            "auth": FIELD_AUTH.get(name, ""),
                            "pagination": FIELD_PAGINATION.get(name, ""),
                        },
                    )
                    for name in names
                ],
            )
            for title, names in GROUPS
        ]

    # --- validation ----------------------------------------------------------------------

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        if not kind:
            return data
        label = Kind(kind).label
        for name in REQUIRED[kind]:
            if data.get(name) in (None, ""):
                self.add_error(name, f"Required for {label}.")
        self._clean_dataset(kind, data)
        self._clean_key(data)
        if kind in SystemEndpoint.UPLOAD_KINDS:
            self._clean_upload(kind, data)
        if kind == Kind.HTTP_JSON:
            self._clean_http(data)
        self.config = self._config(kind, data)
        if not self.errors:
            self._check_with_connector(kind, data)
        self._clean_secrets(kind, data)
        return data

    def _clean_dataset(self, kind: str, data: dict) -> None:
        dataset = (data.get("dataset") or "").strip()
        data["dataset"] = dataset
        if kind in SQL_KINDS:
            if not dataset:
                self.add_error("dataset", "Give a table name or a SELECT query.")
            elif is_query(dataset):
                try:
                    from planner.connectors.base import check_select_query  # sqlglot

                    check_select_query(dataset, kind)
                except ConnectorError as exc:
                    self.add_error("dataset", exc.message)

    def _clean_key(self, data: dict) -> None:
        raw = data.get("key_fields") or ""
        parts = [p.strip() for p in raw.split(",")]
        if not raw.strip() or any(not p for p in parts):
            self.add_error("key_fields", "Name the key field(s), separated by commas.")
        else:
            data["key_fields"] = ", ".join(parts)

    def _stored_upload_usable(self, kind: str) -> bool:
        return bool(self.endpoint and self.endpoint.upload and self.endpoint.kind == kind)

    def _clean_upload(self, kind: str, data: dict) -> None:
        upload: UploadedFile | None = data.get("upload")
        if upload is None:
            if not self._stored_upload_usable(kind):
                what = "SQLite database" if kind == Kind.SQLITE else "CSV, JSON or XLSX"
                self.add_error("upload", f"Upload the {what} file.")
            return
        limit = guard_policy().max_file_bytes
        if upload.size > limit:
            self.add_error("upload", f"The file is larger than the limit of {limit:,} bytes.")
            return
        name = upload.name.lower()
        if kind == Kind.SQLITE:
            head = upload.read(16)
            upload.seek(0)
            if head != b"SQLite format 3\x00":
                self.add_error("upload", "This is not a SQLite database file.")
        elif not data.get("file_format") and not name.endswith(FILE_SUFFIXES):
            self.add_error(
                "upload", "Choose the format: the file name does not end in .csv, .json or .xlsx."
            )
        elif data.get("file_format") == "csv" or (
            not data.get("file_format") and name.endswith(".csv")
        ):
            # Refused now, with the line at fault, rather than at "Test connection" or a run.
            content = upload.read()
            upload.seek(0)
            if problem := csv_problem(content, data.get("delimiter") or ","):
                self.add_error("upload", f"This CSV file is malformed. {problem}")

    def _clean_http(self, data: dict) -> None:
        from urllib.parse import urlsplit

        auth = data.get("auth") or "none"
        for name in ("base_url", "dataset"):
            try:
                parts = urlsplit(data.get(name) or "")
                userinfo = parts.username is not None or parts.password is not None
            except ValueError:
                userinfo = False  # the connector names what is wrong with the URL
            if userinfo:
                # It would be stored and shown as plain text, and never sent as a login; the
                # form shown again keeps the URL without it.
                self.data = self.data.copy()
                self.data[self.add_prefix(name)] = parts._replace(
                    netloc=parts.netloc.rpartition("@")[2]
                ).geturl()
                self.add_error(
                    name,
                    "A URL must not hold a user name or password: choose Basic authentication"
                    " and type the password in its encrypted field.",
                )
        api_key_header = (data.get("api_key_header") or "X-API-Key").strip().lower()
        plain: dict[str, str] = {}
        for n, line in enumerate((data.get("headers") or "").splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            name, value, lowered = name.strip(), value.strip(), name.strip().lower()
            problem = ""
            if not sep or not name:
                problem = "write 'Name: value'."
            elif lowered in AUTH_HEADERS:
                problem = (
                    f"'{name}' carries credentials; use the encrypted token or API-key field"
                    " instead."
                )
            elif auth == "api_key" and lowered == api_key_header:
                problem = (
                    f"{name} is the header of the API-key authentication; remove this line or"
                    " change the API-key header."
                )
            elif lowered in {h.lower() for h in [*plain, *self._header_secrets]}:
                problem = f"{name} is given twice."
            if problem:
                self.add_error("headers", f"Line {n}: {problem}")
                break
            if is_credential_header(name):
                self._header_secrets[name] = (n, value)
            else:
                plain[name] = value
        data["headers"] = plain
        data["secret_headers"] = list(self._header_secrets)
        if auth == "basic" and not data.get("username"):
            self.add_error("username", "Required for basic authentication.")

    def _config(self, kind: str, data: dict) -> dict[str, Any]:
        values = dict(data, format=data.get("file_format") or "")
        out = {}
        for name in CONFIG_FIELDS[kind]:
            value = values.get(name)
            if value in (None, "", {}, []):
                continue
            out[name] = value
        if kind == Kind.FILE:
            out["infer_types"] = bool(data.get("infer_types"))
        return out

    def _check_with_connector(self, kind: str, data: dict) -> None:
        """Let the connector validate the settings (no I/O happens here)."""
        stub = {name: "placeholder" for name in SECRET_INPUTS}
        stub.update({secret_header_key(h): "placeholder" for h in self._header_secrets})
        config = connector_config(
            kind, self.config, data["dataset"], data["key_fields"], b"", self._filename()
        )
        try:
            from planner.connectors.registry import open_connector

            open_connector(kind, config, stub, guard_policy())
        except ConnectorError as exc:
            self.add_error(None, exc.message)

    def _filename(self) -> str:
        upload = self.cleaned_data.get("upload")
        if upload is not None:
            return upload.name
        return self.endpoint.upload_name if self.endpoint else ""

    # --- secrets -------------------------------------------------------------------------

    def _wanted_secrets(self, kind: str, data: dict) -> list[tuple[str, str, str, str]]:
        """(secret name, form field, value typed, message if it is required) for each secret
        these settings send."""
        if kind in DB:
            return [("password", "password", data.get("password") or "", "")]
        if kind != Kind.HTTP_JSON:
            return []
        wanted = []
        auth = data.get("auth") or "none"
        if auth in AUTH_SECRET:
            name = AUTH_SECRET[auth]
            required = f"Required for {dict(self.fields['auth'].choices)[auth]}."
            wanted.append((name, name, data.get(name) or "", required))
        for header, (n, value) in self._header_secrets.items():
            required = f"Line {n}: give the value of {header} (it is stored encrypted)."
            wanted.append((secret_header_key(header), "headers", value, required))
        return wanted

    def _clean_secrets(self, kind: str, data: dict) -> None:
        """Typed secrets, and stored ones only where they were entered for this destination.

        Anything else the stored token holds (a secret these settings no longer send) is
        dropped on save.
        """
        self._values = {}
        for name, field, typed, required in self._wanted_secrets(kind, data):
            value, refused = typed, False
            if not value:
                value, refused = self._stored_value(kind, name, field)
            if value:
                self._values[name] = value
            elif required and not refused:
                self.add_error(field, required)

    def _sealed(self) -> secrets.Sealed | None:
        """The stored token, decrypted once; None (and a form error) if it cannot be."""
        if self._sealed_cache is None:
            try:
                self._sealed_cache = secrets.unseal(self.endpoint.secrets_token)  # type: ignore[union-attr]
            except secrets.SecretError:
                self.add_error(
                    None,
                    "The stored secrets cannot be decrypted with the configured keys"
                    " (AETHON_SECRET_KEYS): type them in again.",
                )
                self._sealed_cache = secrets.Sealed({}, {})
                return None
        return self._sealed_cache

    def _stored_value(self, kind: str, name: str, field: str) -> tuple[str, bool]:
        """(the stored value of `name` if it may be kept, whether it was refused here)."""
        if self.cleaned_data.get("clear_secrets") or name not in self.stored_secret_names:
            return "", False
        sealed = self._sealed()
        if sealed is None or name not in sealed.values:
            return "", sealed is None
        label = secret_label(name, self._header_secrets)
        entered = (sealed.bindings or {}).get(name)
        if entered is None:
            self.add_error(
                field,
                f"The {label} was stored without the server it was entered for; enter it again.",
            )
            return "", True
        changes = destination_changes(entered, secret_binding(kind, self.config, name))
        if changes:
            self.add_error(
                field,
                f"The {label} was entered for {describe_destination(entered)}; you changed"
                f" {the_changes(changes)} — enter it again.",
            )
            return "", True
        return sealed.values[name], False

    def secrets(self) -> dict[str, str]:
        """The secrets these settings send: typed ones, and stored ones bound to this destination
        (valid forms only)."""
        return dict(self._values)

    # --- use -----------------------------------------------------------------------------

    def connector(self) -> Connector:
        """A connector for the settings as submitted (unsaved), e.g. for "Test connection"."""
        data = self.cleaned_data
        kind = data["kind"]
        content = None
        if kind in SystemEndpoint.UPLOAD_KINDS:
            upload = data.get("upload")
            if upload is not None:
                upload.seek(0)
                content = upload.read()
                upload.seek(0)
            else:
                content = upload_bytes(self.endpoint) if self.endpoint else None
        config = connector_config(
            kind, self.config, data["dataset"], data["key_fields"], content, self._filename()
        )
        from planner.connectors.registry import open_connector

        return open_connector(kind, config, self.secrets(), guard_policy())

    def save(self) -> SystemEndpoint:
        """Store the settings (optimistic version check: may raise StaleEdit)."""
        data = self.cleaned_data
        kind = data["kind"]
        ep = self.endpoint or SystemEndpoint(project_id=self.system.project_id, system=self.system)
        old_file = ep.upload.name if ep.upload else ""
        stored = self.secrets()
        ep.kind, ep.config = kind, self.config
        ep.dataset = data["dataset"] if kind != Kind.FILE else ""
        ep.key_fields = data["key_fields"]
        ep.secrets_token = seal_secrets(kind, self.config, stored)
        ep.secrets_set = sorted(stored)
        new_file = ""
        if kind in SystemEndpoint.UPLOAD_KINDS:
            upload = data.get("upload")
            if upload is not None:
                ep.upload.save(upload.name, upload, save=False)
                ep.upload_name = upload.name
                new_file = ep.upload.name
        else:
            ep.upload, ep.upload_name = "", ""
        try:
            save_versioned(ep, data.get("expected_version") if ep.pk else None)
        except Exception:
            if new_file:
                ep.upload.storage.delete(new_file)  # the settings were not saved; nor is the file
            raise
        if old_file and old_file != (ep.upload.name if ep.upload else ""):
            ep.upload.storage.delete(old_file)
        return ep


def _initial(ep: SystemEndpoint) -> dict[str, Any]:
    config = dict(ep.config)
    initial: dict[str, Any] = {
        "kind": ep.kind,
        "dataset": ep.dataset,
        "key_fields": ep.key_fields,
        "expected_version": ep.version,
        "file_format": config.pop("format", ""),
        # Stored credential headers come back as "Name:" (their values are write-only).
        "headers": "\n".join(
            [f"{k}: {v}" for k, v in (config.pop("headers", {}) or {}).items()]
            + [f"{name}:" for name in config.pop("secret_headers", []) or []]
        ),
    }
    initial.update(config)
    return initial
