"""The Django side of the connectors: a SystemEndpoint becomes a Connector under the guard.

`planner.connectors` knows nothing of Django; this module turns stored settings, decrypted
secrets, uploaded files and the guard settings into its arguments.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils import timezone

from planner.connectors.guard import GuardPolicy
from planner.connectors.names import SECRET_HEADER_PREFIX, ConnectorError
from planner.models import FieldMapping, System, SystemEndpoint
from planner.runs import secrets

if TYPE_CHECKING:
    from planner.connectors import Connector

# The connectors and the mapping engine (polars, sqlglot, drivers) load when a connector is
# opened or a rule compiled, not when the web process imports this module.

SQL_KINDS = ("postgres", "mysql", "sqlite")


def guard_policy(upload_folder: str | None = None) -> GuardPolicy:
    """The outbound guard from settings, read at call time (so overrides apply at once).

    Users never type server paths: a connector may read files only in ``upload_folder``, the
    folder of the system's own upload in storage (none when not given).
    """
    values = dict(getattr(settings, "AETHON_CONNECTOR_GUARD", {}))
    values["allow_hosts"] = list(getattr(settings, "AETHON_OUTBOUND_ALLOW_HOSTS", []))
    values["file_roots"] = (upload_folder,) if upload_folder else ()
    return GuardPolicy.from_mapping(values)


def is_query(dataset: str) -> bool:
    words = dataset.strip().split(None, 1)
    return bool(words) and words[0].lower() in ("select", "with")


def connector_config(
    kind: str,
    config: dict[str, Any],
    dataset: str,
    key_fields: str,
    content: bytes | None = None,
    filename: str = "",
    path: str | None = None,
) -> dict[str, Any]:
    """Stored settings -> the connector's config dict (see docs/connectors.md).

    An upload reaches the connector as its ``path`` in storage when it has one (read in
    blocks), else as bytes; a path never comes from the stored settings.
    """
    out = {k: v for k, v in config.items() if v not in (None, "") and k not in ("path", "content")}
    out["key"] = key_fields
    dataset = dataset.strip()
    if kind in SQL_KINDS and dataset:
        out["query" if is_query(dataset) else "table"] = dataset
    elif kind == "http_json":
        out["endpoint"] = dataset
    if kind in SystemEndpoint.UPLOAD_KINDS:
        if path:
            out["path"] = path
        else:
            out["content"] = content if content is not None else b""
        out["filename"] = filename
    return out


# ---------------------------------------------------------------------------------------------
# Where a secret goes: every secret is bound to the destination it was entered for

DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}
# Which secret each HTTP authentication style sends.
AUTH_SECRET = {"bearer": "token", "basic": "password", "api_key": "api_key"}
AUTH_NAMES = {"bearer": "Bearer token", "basic": "Basic"}
# The parts of a destination, in the order a message names them.
DESTINATION_PARTS = {
    "kind": "connection kind",
    "host": "host",
    "port": "port",
    "database": "database",
    "user": "user",
    "base_url": "base URL",
    "auth": "authentication",
    "username": "username",
    "header": "API-key header",
}
SECRET_LABELS = {"password": "password", "token": "token", "api_key": "API key"}


def _port(value: Any, default: int) -> int | str:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def normal_base_url(url: str) -> str:
    """A base URL reduced to what decides where requests go (case, default port, last /)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        host, port = (parts.hostname or "").rstrip("."), parts.port
    except ValueError:  # an invalid port: keep the text, it differs from any valid one
        return urlunsplit((scheme, parts.netloc.lower(), parts.path.rstrip("/"), parts.query, ""))
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), parts.query, ""))


def header_of(name: str) -> str:
    """The header a secret is the value of ("" for the password, token and API key)."""
    return name[len(SECRET_HEADER_PREFIX) :] if name.startswith(SECRET_HEADER_PREFIX) else ""


def secret_binding(kind: str, config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The destination the secret `name` is sent to under these settings.

    A stored secret may only be used where this equals the binding it was stored with: the
    server (and, for databases, the database and user it logs in as), and for HTTP the base
    URL plus how the secret travels (authentication style, username, header name).
    """
    if kind in DEFAULT_PORTS:
        return {
            "kind": kind,
            "host": str(config.get("host") or "").strip().rstrip(".").lower(),
            "port": _port(config.get("port"), DEFAULT_PORTS[kind]),
            "database": str(config.get("database") or ""),
            "user": str(config.get("user") or ""),
        }
    if kind != "http_json":
        return {"kind": kind}
    out: dict[str, Any] = {
        "kind": kind,
        "base_url": normal_base_url(str(config.get("base_url") or "")),
    }
    if header_of(name):
        out["header"] = header_of(name)
        return out
    out["auth"] = str(config.get("auth") or "none")
    if name == "password":
        out["username"] = str(config.get("username") or "")
    if name == "api_key":
        out["header"] = str(config.get("api_key_header") or "X-API-Key").strip().lower()
    return out


def describe_destination(binding: Mapping[str, Any]) -> str:
    """'db.example:5432/crm as crm_reader', 'https://api.example.com (Bearer token)', …"""
    kind = binding.get("kind")
    if kind in DEFAULT_PORTS:
        b = binding
        return f"{b.get('host')}:{b.get('port')}/{b.get('database')} as {b.get('user')}"
    if kind != "http_json":
        return str(kind)
    url, auth = binding.get("base_url", ""), binding.get("auth")
    if auth == "basic":
        return f"{url} as {binding.get('username')} (Basic)"
    if auth == "api_key":
        return f"{url} in header {binding.get('header')}"
    return f"{url} ({AUTH_NAMES[auth]})" if auth in AUTH_NAMES else url


def destination_changes(entered: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The parts of the destination that differ, e.g. ['host', 'port'] ([] when the same)."""
    if entered.get("kind") != current.get("kind"):
        return [DESTINATION_PARTS["kind"]]
    names = [*DESTINATION_PARTS, *sorted((set(entered) | set(current)) - set(DESTINATION_PARTS))]
    return [DESTINATION_PARTS.get(n, n) for n in names if entered.get(n) != current.get(n)]


def the_changes(changes: list[str]) -> str:
    """['host', 'port', 'user'] -> 'the host, the port and the user'."""
    parts = [f"the {c}" for c in changes]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def secret_label(name: str, header_names: Iterable[str] = ()) -> str:
    """'password', 'API key', or 'Private-Token header' (as the editor spelled the header)."""
    header = header_of(name)
    if not header:
        return SECRET_LABELS.get(name, name)
    spelled = {h.strip().lower(): h.strip() for h in header_names}
    return f"{spelled.get(header, header)} header"


def seal_secrets(kind: str, config: Mapping[str, Any], values: dict[str, str]) -> str:
    """The token storing `values`, each bound to where these settings send it."""
    return secrets.seal(values, {n: secret_binding(kind, config, n) for n in values})


def secrets_of(endpoint: SystemEndpoint) -> dict[str, str]:
    """The stored secrets, only if each was entered for the destination the settings name now.

    The settings page refuses to keep a secret for a new destination; this is the same rule at
    use time, for settings that changed any other way (a script, a restored backup).
    """
    sealed = secrets.unseal(endpoint.secrets_token)
    headers = endpoint.config.get("secret_headers") or []
    for name in sorted(sealed.values):
        label = f"stored {secret_label(name, headers)} of {endpoint.system.name}"
        entered = (sealed.bindings or {}).get(name)
        if entered is None:
            raise ConnectorError(
                f"The {label} does not say which server it was entered for (it was saved before"
                " secrets were bound to their destination); it was not sent. Enter it again in"
                " the connection settings."
            )
        changes = destination_changes(entered, secret_binding(endpoint.kind, endpoint.config, name))
        if changes:
            verb = "differs" if len(changes) == 1 else "differ"
            raise ConnectorError(
                f"The {label} was entered for {describe_destination(entered)}, not for the"
                f" current settings ({the_changes(changes)} {verb}); it was not sent. Enter it"
                " again in the connection settings."
            )
    return sealed.values


def upload_bytes(endpoint: SystemEndpoint) -> bytes | None:
    if not endpoint.upload:
        return None
    try:
        with endpoint.upload.open("rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise ConnectorError(
            f"The uploaded file of {endpoint.system} is missing from storage; upload it again."
        ) from None


def upload_file(endpoint: SystemEndpoint) -> str | None:
    """The path of a CSV/JSON/XLSX upload in storage (None: storage without local files)."""
    if endpoint.kind != SystemEndpoint.Kind.FILE or not endpoint.upload:
        return None
    try:
        path = endpoint.upload.path
    except NotImplementedError:
        return None
    if not Path(path).is_file():
        raise ConnectorError(
            f"The uploaded file of {endpoint.system} is missing from storage; upload it again."
        )
    return path


def open_endpoint(endpoint: SystemEndpoint) -> Connector:
    """A connector for stored settings; ConnectorError if they are incomplete or invalid."""
    if endpoint.is_upload and not endpoint.upload:
        raise ConnectorError(f"No file has been uploaded for {endpoint.system} yet.")
    path = upload_file(endpoint)
    config = connector_config(
        endpoint.kind,
        endpoint.config,
        endpoint.dataset,
        endpoint.key_fields,
        upload_bytes(endpoint) if endpoint.is_upload and path is None else None,
        endpoint.upload_name,
        path,
    )
    try:
        decrypted = secrets_of(endpoint)
    except secrets.SecretError as exc:
        raise ConnectorError(str(exc)) from None
    from planner.connectors.registry import open_connector

    folder = str(Path(path).parent) if path else None
    return open_connector(endpoint.kind, config, decrypted, guard_policy(folder))


def endpoint_of(system: System) -> SystemEndpoint | None:
    try:
        return system.endpoint
    except SystemEndpoint.DoesNotExist:
        return None


# ---------------------------------------------------------------------------------------------
# Which fields the mappings expect a system to have


def _rule_fields(m: FieldMapping) -> set[str]:
    """Source fields a mapping row reads: its source field plus fields named in the rule."""
    fields = {m.source_field} if m.source_field else set()
    # A broken rule is reported by the mapping editor and the run's mapping stage.
    from planner.mapping.engine import plan_field
    from planner.mapping.specs import spec_of

    with contextlib.suppress(ValueError):
        fields |= plan_field(spec_of(m)).fields
    return fields


def expected_fields(system: System) -> dict[str, list[str]]:
    """{field: [connections needing it]} over every mapping where `system` is source or target."""
    needed: dict[str, list[str]] = {}
    mappings = FieldMapping.objects.filter(project_id=system.project_id).select_related(
        "connection__source", "connection__target"
    )
    for m in mappings:
        c = m.connection
        if c.source_id == system.pk:
            for f in _rule_fields(m):
                needed.setdefault(f, []).append(str(c))
        if c.target_id == system.pk and m.target_field:
            needed.setdefault(m.target_field, []).append(str(c))
    return {f: sorted(set(where)) for f, where in needed.items()}


@dataclass
class TestOutcome:
    """What "Test connection" shows: the report plus mapped fields the system lacks."""

    __test__ = False  # not a pytest class

    report: dict[str, Any]
    missing: list[tuple[str, list[str]]]

    @property
    def ok(self) -> bool:
        return bool(self.report.get("ok"))


def check_fields(system: System, seen: Iterable[str]) -> list[tuple[str, list[str]]]:
    have = set(seen)
    return sorted((f, where) for f, where in expected_fields(system).items() if f not in have)


def test_connector(system: System, connector: Connector | None, error: str = "") -> TestOutcome:
    """Authenticate and fetch one record (never raises), then compare with the mappings."""
    if connector is None:
        from planner.connectors.base import ConnectionReport

        report = ConnectionReport(False, 0.0, error=error or "Not configured.").to_dict()
    else:
        report = connector.test().to_dict()
    report.pop("sample", None)  # record values are not needed to judge the connection
    missing = check_fields(system, report["fields"]) if report["fields"] else []
    return TestOutcome(report, missing)


def record_test(endpoint: SystemEndpoint, outcome: TestOutcome) -> None:
    """Remember the last result; an update, so neither the version nor the history moves."""
    now = timezone.now()
    SystemEndpoint.objects.filter(pk=endpoint.pk).update(
        last_test={**outcome.report, "missing": [f for f, _ in outcome.missing]},
        last_tested_at=now,
    )
    endpoint.last_test, endpoint.last_tested_at = outcome.report, now
