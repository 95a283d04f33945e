"""SQLite connector: the file is opened read-only, ``query_only``, under a read-only authorizer."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from planner.connectors.base import (
    DEFAULT_BATCH_SIZE,
    BaseConnector,
    ConnectorError,
    SchemaTracker,
    frame_from_rows,
    quote_ident,
    sql_dataset,
    unique_names,
    utc_text,
)
from planner.connectors.guard import check_path

# Everything a plain SELECT needs; any write, ATTACH or PRAGMA is denied by SQLite itself.
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)


# How many SQLite VM instructions run between two looks at the clock.
_PROGRESS_STEPS = 10_000


def _unix_seconds(instant: dt.datetime) -> float:
    """An instant as Unix seconds (a naive one is UTC)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.UTC)
    return instant.timestamp()


def _hash32(value: str | None, part: int) -> int | None:
    if value is None:
        return None
    digest = hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()
    return int(digest[8 * part : 8 * part + 8], 16)


def _authorizer(action: int, *_args: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


@dataclass(frozen=True)
class SqliteConfig:
    path: str | None = None
    content: bytes | None = None
    table: str | None = None
    query: str | None = None
    key: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> SqliteConfig:
        path, content = config.get("path"), config.get("content")
        if bool(path) == (content is not None):
            raise ConnectorError("Give either a database file path or its uploaded content.")
        if content is not None and not isinstance(content, bytes | bytearray):
            raise ConnectorError("SQLite content must be bytes.")
        return cls(
            path=str(path) if path else None,
            content=bytes(content) if content is not None else None,
            **sql_dataset(config, "sqlite"),
        )


class _Deadline:
    """A statement time limit: SQLite has none, so a progress handler interrupts the query."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.hit = False
        self.expires = 0.0
        self.restart()

    def restart(self) -> None:
        self.expires = time.monotonic() + self.seconds

    def __call__(self) -> int:
        if time.monotonic() > self.expires:
            self.hit = True
            return 1  # non-zero: SQLite stops the statement with "interrupted"
        return 0


class SqliteConnector(BaseConnector):
    kind = "sqlite"
    config_class = SqliteConfig
    config: SqliteConfig

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        with self._session() as (conn, _deadline):
            yield conn

    @contextlib.contextmanager
    def _session(self) -> Iterator[tuple[sqlite3.Connection, _Deadline]]:
        """Read-only three times over: a ``mode=ro`` file, ``query_only`` and an authorizer."""
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
                # A session is used by one thread at a time, not always the one that opened
                # it (key-range checksums run both sides in a small thread pool).
                conn = sqlite3.connect(
                    f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
            stack.callback(conn.close)
            with self._errors("Could not open the SQLite database"):
                conn.execute("PRAGMA query_only = 1")  # before the authorizer, which denies PRAGMA
            # 32 bits of MD5, as PostgreSQL and MySQL compute them: key-range checksums
            # and key samples (planner.runs.pushdown) agree across databases.
            conn.create_function("aethon_hash32", 2, _hash32, deterministic=True)
            conn.set_authorizer(_authorizer)
            deadline = _Deadline(self.guard.read_timeout)
            conn.set_progress_handler(deadline, _PROGRESS_STEPS)
            yield conn, deadline

    @contextlib.contextmanager
    def _reading(self, deadline: _Deadline) -> Iterator[None]:
        try:
            with self._errors("Query failed"):
                yield
        except ConnectorError:
            if deadline.hit:
                raise ConnectorError(
                    f"Query failed: it took longer than {self.guard.read_timeout:g} s"
                    " and was stopped."
                ) from None
            raise

    def _dataset(self) -> str:
        if self.config.query:
            # The newlines keep a trailing "-- comment" in the query from hiding the ")".
            return f"(\n{self.config.query}\n) AS aethon_q"
        return quote_ident(self.config.table or "")

    def _probe(self) -> pl.DataFrame:
        with self._session() as (conn, deadline), self._reading(deadline):
            cur = conn.execute(f"SELECT * FROM {self._dataset()} LIMIT 1")  # noqa: S608
            rows = cur.fetchall()
            return frame_from_rows(unique_names(d[0] for d in cur.description), rows)

    def fetch(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pl.DataFrame]:
        tracker = SchemaTracker()
        with self._session() as (conn, deadline), self._reading(deadline):
            cur = conn.execute(f"SELECT * FROM {self._dataset()}")  # noqa: S608
            columns = unique_names(d[0] for d in cur.description)
            while True:
                deadline.restart()  # the limit is per batch, like a statement timeout
                rows = cur.fetchmany(batch_size)
                if not rows:
                    break
                yield tracker.stabilize(frame_from_rows(columns, rows))

    dialect = "sqlite"

    @contextlib.contextmanager
    def statements(self) -> Iterator[Callable[[Callable[[str], str]], list[tuple[Any, ...]]]]:
        """One read-only session for many generated SELECTs (key-range checksums)."""
        with self._session() as (conn, deadline), self._reading(deadline):

            def run(build: Callable[[str], str]) -> list[tuple[Any, ...]]:
                deadline.restart()
                return conn.execute(build(self._dataset())).fetchall()

            yield run

    def fetch_ordered(
        self,
        order_by: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        where: str | None = None,
        *,
        changed_since: tuple[str, dt.datetime] | None = None,
    ) -> Iterator[pl.DataFrame]:
        """Every record in ``order_by`` order (text by code point, NULLs last), in batches.

        ``where`` (generated SQL, planner.runs.pushdown) limits the read to a key range.
        ``changed_since=(field, instant)`` reads only records whose ``field`` (ISO text, with
        or without an offset; without is UTC) is at or after the instant, compared by
        ``julianday`` (millisecond precision: the caller's overlap covers the edge). Numbers
        are Unix seconds, as the freshness reader takes them; text ``julianday`` cannot read
        (an offset such as ``+02``) is read, and the caller filters it.
        """
        order = ", ".join(
            f"{quote_ident(k)} IS NULL, {quote_ident(k)} COLLATE BINARY" for k in order_by
        )
        conditions = [f"({where})"] if where else []
        if changed_since is not None:
            name, instant = changed_since
            # The literal is built from a datetime, never from user text.
            column = quote_ident(name)
            conditions.append(
                f"CASE WHEN typeof({column}) IN ('integer', 'real') "
                f"THEN {column} >= {_unix_seconds(instant)!r} "
                f"ELSE coalesce(julianday({column}) >= julianday('{utc_text(instant)}'), 1) END"
            )
        tracker = SchemaTracker()
        where_sql = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._session() as (conn, deadline), self._reading(deadline):
            cur = conn.execute(f"SELECT * FROM {self._dataset()}{where_sql} ORDER BY {order}")  # noqa: S608
            columns = unique_names(d[0] for d in cur.description)
            missing = [k for k in order_by if k not in columns]
            if missing:
                raise ConnectorError(f"The dataset has no field(s) {', '.join(missing)}.")
            while True:
                deadline.restart()
                rows = cur.fetchmany(batch_size)
                if not rows:
                    break
                yield tracker.stabilize(frame_from_rows(columns, rows))

    def count(self) -> int | None:
        with self._session() as (conn, deadline), self._reading(deadline):
            row = conn.execute(f"SELECT count(*) FROM {self._dataset()}").fetchone()  # noqa: S608
            return int(row[0]) if row else None
