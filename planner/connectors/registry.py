"""Open a connector by its kind: the one place that knows every connector class."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from planner.connectors.base import KINDS, Connector, ConnectorError
from planner.connectors.guard import GuardPolicy

# Module and class of each kind, imported when a connector of that kind is opened: a run
# between two PostgreSQL tables does not pay for the file, HTTP, MySQL and SQLite readers.
CONNECTORS: dict[str, tuple[str, str]] = {
    "postgres": ("planner.connectors.postgres", "PostgresConnector"),
    "mysql": ("planner.connectors.mysql", "MySQLConnector"),
    "sqlite": ("planner.connectors.sqlite", "SqliteConnector"),
    "file": ("planner.connectors.files", "FileConnector"),
    "http_json": ("planner.connectors.http_json", "HttpJsonConnector"),
}


def connector_class(kind: str) -> type[Connector]:
    """The class that reads systems of ``kind``; ConnectorError for an unknown kind."""
    where = CONNECTORS.get(kind)
    if where is None:
        raise ConnectorError(
            f"Unknown connection kind '{kind}'. Expected one of: {', '.join(KINDS)}."
        )
    module, name = where
    return getattr(importlib.import_module(module), name)


def open_connector(
    kind: str,
    config: Mapping[str, Any],
    secrets: Mapping[str, Any] | None,
    guard: GuardPolicy,
) -> Connector:
    """Validate ``config`` and build a connector. No I/O happens until a method is called.

    Raises ConnectorError for an unknown kind or invalid configuration.
    """
    return connector_class(kind).from_config(config, secrets or {}, guard)
