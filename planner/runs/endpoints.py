"""The Django side of the connectors: a SystemEndpoint becomes a Connector under the guard.

`planner.connectors` knows nothing of Django; this module turns stored settings, decrypted
secrets, uploaded files and the guard settings into its arguments.
"""

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from planner.connectors import (
    ConnectionReport,
    Connector,
    ConnectorError,
    GuardPolicy,
    open_connector,
)
from planner.mapping.engine import plan_field
from planner.mapping.specs import spec_of
from planner.models import FieldMapping, System, SystemEndpoint
from planner.runs import secrets

SQL_KINDS = ("postgres", "mysql", "sqlite")


def guard_policy() -> GuardPolicy:
    """The outbound guard from settings, read at call time (so overrides apply at once)."""
    values = dict(getattr(settings, "AETHON_CONNECTOR_GUARD", {}))
    values["allow_hosts"] = list(getattr(settings, "AETHON_OUTBOUND_ALLOW_HOSTS", []))
    # Users never type server paths: uploads reach connectors as bytes.
    values["file_roots"] = ()
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
) -> dict[str, Any]:
    """Stored settings -> the connector's config dict (see docs/connectors.md)."""
    out = {k: v for k, v in config.items() if v not in (None, "")}
    out["key"] = key_fields
    dataset = dataset.strip()
    if kind in SQL_KINDS and dataset:
        out["query" if is_query(dataset) else "table"] = dataset
    elif kind == "http_json":
        out["endpoint"] = dataset
    if kind in SystemEndpoint.UPLOAD_KINDS:
        out["content"] = content if content is not None else b""
        out["filename"] = filename
    return out


def secrets_of(endpoint: SystemEndpoint) -> dict[str, str]:
    return secrets.decrypt_json(endpoint.secrets_token)


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


def open_endpoint(endpoint: SystemEndpoint) -> Connector:
    """A connector for stored settings; ConnectorError if they are incomplete or invalid."""
    if endpoint.is_upload and not endpoint.upload:
        raise ConnectorError(f"No file has been uploaded for {endpoint.system} yet.")
    config = connector_config(
        endpoint.kind,
        endpoint.config,
        endpoint.dataset,
        endpoint.key_fields,
        upload_bytes(endpoint) if endpoint.is_upload else None,
        endpoint.upload_name,
    )
    try:
        decrypted = secrets_of(endpoint)
    except secrets.SecretError as exc:
        raise ConnectorError(str(exc)) from None
    return open_connector(endpoint.kind, config, decrypted, guard_policy())


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
