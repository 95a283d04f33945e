"""SQLite connector: the database file is opened read-only under a read-only authorizer."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from planner.connectors.base import (
    DEFAULT_BATCH_SIZE,
    BaseConnector,
    ConnectorError,
    SchemaTracker,
    check_select_query,
    dataset_choice,
    frame_from_rows,
    parse_key,
    unique_names,
)
from planner.connectors.guard import check_path

# Everything a plain SELECT needs; any write, ATTACH or PRAGMA is denied by SQLite itself.
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)


def _authorizer(action: int, *_args: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def quote_ident(name: str) -> str:
    if not name or "\x00" in name:
        raise ConnectorError("Invalid identifier.")
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class SqliteConfig:
    path: str | None = None
    content: bytes | None = None
    table: str | None = None
    query: str | None = None
    key: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> SqliteConfig:
        table, query = dataset_choice(config)
        path, content = config.get("path"), config.get("content")
        if bool(path) == (content is not None):
            raise ConnectorError("Give either a database file path or its uploaded content.")
        if content is not None and not isinstance(content, bytes | bytearray):
            raise ConnectorError("SQLite content must be bytes.")
        return cls(
            path=str(path) if path else None,
            content=bytes(content) if content is not None else None,
            table=table,
            query=check_select_query(query, "sqlite") if query else None,
            key=parse_key(config.get("key")),
        )


class SqliteConnector(BaseConnector):
    kind = "sqlite"
    config_class = SqliteConfig
    config: SqliteConfig

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        with contextlib.ExitStack() as stack:
            if self.config.content is not None:
                if len(self.config.content) > self.guard.max_file_bytes:
                    raise ConnectorError("The database file is larger than the allowed size.")
                tmp = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".sqlite3"))
                tmp.write(self.config.content)
                tmp.flush()
                path = Path(tmp.name)
            else:
                path = check_path(self.config.path or "", self.guard)
            with self._errors("Could not open the SQLite database"):
                conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            stack.callback(conn.close)
            conn.set_authorizer(_authorizer)
            yield conn

    def _dataset(self) -> str:
        if self.config.query:
            return f"({self.config.query}) AS aethon_q"
        return quote_ident(self.config.table or "")

    def _probe(self) -> pl.DataFrame:
        with self.connect() as conn, self._errors("Query failed"):
            cur = conn.execute(f"SELECT * FROM {self._dataset()} LIMIT 1")  # noqa: S608
            rows = cur.fetchall()
            return frame_from_rows(unique_names(d[0] for d in cur.description), rows)

    def fetch(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pl.DataFrame]:
        tracker = SchemaTracker()
        with self.connect() as conn, self._errors("Query failed"):
            cur = conn.execute(f"SELECT * FROM {self._dataset()}")  # noqa: S608
            columns = unique_names(d[0] for d in cur.description)
            while rows := cur.fetchmany(batch_size):
                yield tracker.stabilize(frame_from_rows(columns, rows))

    def count(self) -> int | None:
        with self.connect() as conn, self._errors("Query failed"):
            row = conn.execute(f"SELECT count(*) FROM {self._dataset()}").fetchone()  # noqa: S608
            return int(row[0]) if row else None
