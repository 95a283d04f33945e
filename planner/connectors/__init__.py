"""Data access for validation runs: one connector per kind of source/target system.

Django-free on purpose; callers pass settings in (``GuardPolicy``) and secrets as a dict.
"""

from planner.connectors.base import (
    KINDS,
    ConnectionReport,
    Connector,
    ConnectorError,
    check_select_query,
    fetch_all,
)
from planner.connectors.guard import BlockedDestination, GuardPolicy, http_get, resolve_and_check
from planner.connectors.registry import open_connector

__all__ = [
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
