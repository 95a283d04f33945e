"""Data access for validation runs: one connector per kind of source/target system.

Django-free on purpose; callers pass settings in (``GuardPolicy``) and secrets as a dict.
The names below load on first use (PEP 562), so a process that only needs a constant of a
submodule (the web process, through the models) does not import polars, sqlglot or the
database drivers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planner.connectors.base import (
        KINDS,
        ConnectionReport,
        Connector,
        ConnectorError,
        check_select_query,
        fetch_all,
    )
    from planner.connectors.guard import (
        BlockedDestination,
        GuardPolicy,
        http_get,
        resolve_and_check,
    )
    from planner.connectors.registry import open_connector

_WHERE = {
    "KINDS": "base",
    "ConnectionReport": "base",
    "Connector": "base",
    "ConnectorError": "names",
    "check_select_query": "base",
    "fetch_all": "base",
    "BlockedDestination": "guard",
    "GuardPolicy": "guard",
    "http_get": "guard",
    "resolve_and_check": "guard",
    "open_connector": "registry",
}

__all__ = [  # noqa: RUF022 - the names of _WHERE
    "KINDS",
    "BlockedDestination",
    "ConnectionReport",
    "Connector",
    "ConnectorError",
    "GuardPolicy",
    "check_select_query",
    "fetch_all",
    "http_get",
    "open_connector",
    "resolve_and_check",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'planner.connectors' has no attribute {name!r}")
    return getattr(importlib.import_module(f"planner.connectors.{module}"), name)
