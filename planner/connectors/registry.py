"""Open a connector by its kind: the one place that knows every connector class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.connectors.base import KINDS, Connector, ConnectorError
from planner.connectors.files import FileConnector
from planner.connectors.guard import GuardPolicy
from planner.connectors.http_json import HttpJsonConnector
from planner.connectors.mysql import MySQLConnector
from planner.connectors.postgres import PostgresConnector
from planner.connectors.sqlite import SqliteConnector

CONNECTORS: dict[str, type[Connector]] = {
    "postgres": PostgresConnector,
    "mysql": MySQLConnector,
    "sqlite": SqliteConnector,
    "file": FileConnector,
    "http_json": HttpJsonConnector,
}


def open_connector(
    kind: str,
    config: Mapping[str, Any],
    secrets: Mapping[str, Any] | None,
    guard: GuardPolicy,
) -> Connector:
    """Validate ``config`` and build a connector. No I/O happens until a method is called.

    Raises ConnectorError for an unknown kind or invalid configuration.
    """
    connector = CONNECTORS.get(kind)
    if connector is None:
        raise ConnectorError(
            f"Unknown connection kind '{kind}'. Expected one of: {', '.join(KINDS)}."
        )
    return connector.from_config(config, secrets or {}, guard)
