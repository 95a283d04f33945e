"""PostgreSQL connector (psycopg 3): read-only transactions, server-side cursors."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader

from planner.connectors.base import (
    DEFAULT_BATCH_SIZE,
    BaseConnector,
    ConnectorError,
    SchemaTracker,
    check_select_query,
    dataset_choice,
    frame_from_rows,
    optional_int,
    optional_str,
    parse_key,
    require_str,
    unique_names,
)
from planner.connectors.guard import resolve_and_check

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

# OID -> polars dtype for the types whose Python values polars would otherwise guess
# differently per batch (e.g. an all-null batch) or lossily (float4 as float64).
_OID_DTYPES: dict[int, pl.DataType] = {
    16: pl.Boolean(),
    17: pl.Binary(),
    20: pl.Int64(),
    21: pl.Int16(),
    23: pl.Int32(),
    26: pl.Int64(),
    700: pl.Float32(),
    701: pl.Float64(),
    19: pl.String(),
    25: pl.String(),
    1042: pl.String(),
    1043: pl.String(),
    114: pl.String(),
    3802: pl.String(),
    2950: pl.String(),
    1082: pl.Date(),
    1083: pl.Time(),
    1114: pl.Datetime("us"),
    1184: pl.Datetime("us", "UTC"),
    1186: pl.Duration("us"),
}
_NUMERIC_OID = 1700
# Loaded as text: polars has no UUID/JSON type, and text keeps them comparable.
_TEXT_TYPES = ("uuid", "json", "jsonb", "inet", "cidr", "macaddr", "money", "xml")


@dataclass(frozen=True)
class PostgresConfig:
    host: str
    database: str
    user: str
    port: int = 5432
    schema: str | None = None
    table: str | None = None
    query: str | None = None
    sslmode: str = "prefer"
    key: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> PostgresConfig:
        table, query = dataset_choice(config)
        sslmode = optional_str(config, "sslmode", "prefer") or "prefer"
        if sslmode not in SSL_MODES:
            raise ConnectorError(f"sslmode must be one of {', '.join(SSL_MODES)}.")
        return cls(
            host=require_str(config, "host", "Host"),
            database=require_str(config, "database", "Database"),
            user=require_str(config, "user", "User"),
            port=optional_int(config, "port", 5432, minimum=1),
            schema=optional_str(config, "schema"),
            table=table,
            query=check_select_query(query, "postgres") if query else None,
            sslmode=sslmode,
            key=parse_key(config.get("key")),
        )


def pg_dtypes(description: Sequence[Any] | None) -> dict[str, pl.DataType | None]:
    """Polars dtype hints from a psycopg cursor description (None: let polars infer)."""
    out: dict[str, pl.DataType | None] = {}
    names = unique_names(col.name for col in description or ())
    for name, col in zip(names, description or (), strict=True):
        dtype = _OID_DTYPES.get(col.type_code)
        if col.type_code == _NUMERIC_OID and col.precision and col.precision <= 38:
            dtype = pl.Decimal(col.precision, col.scale or 0)
        out[name] = dtype
    return out


def cursor_frame(cursor: psycopg.Cursor[Any], rows: Sequence[Sequence[Any]]) -> pl.DataFrame:
    """Rows fetched from ``cursor`` as a frame; the one conversion used everywhere."""
    dtypes = pg_dtypes(cursor.description)
    return frame_from_rows(list(dtypes), rows, dtypes)


def configure(conn: psycopg.Connection[Any]) -> None:
    for name in _TEXT_TYPES:
        with contextlib.suppress(Exception):
            conn.adapters.register_loader(name, TextLoader)


class PostgresConnector(BaseConnector):
    kind = "postgres"
    config_class = PostgresConfig
    config: PostgresConfig

    @property
    def table_ref(self) -> tuple[str, ...]:
        """(schema, table) or (table,) for a table dataset; for :func:`reconcile_postgres`."""
        if not self.config.table:
            raise ConnectorError("This connection uses a query, not a table.")
        return (
            (self.config.schema, self.config.table) if self.config.schema else (self.config.table,)
        )

    @contextlib.contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        """A read-only connection to a checked, pinned IP address."""
        cfg, policy = self.config, self.guard
        ips = resolve_and_check(cfg.host, cfg.port, policy)
        conn = None
        last = ""
        with self._errors("Could not connect to PostgreSQL"):
            for ip in ips:
                try:
                    conn = psycopg.connect(
                        host=cfg.host.strip("[]"),  # used for TLS name checks only
                        hostaddr=ip,  # the address we checked is the one we dial
                        port=cfg.port,
                        dbname=cfg.database,
                        user=cfg.user,
                        password=self._secrets.get("password") or None,
                        sslmode=cfg.sslmode,
                        connect_timeout=max(2, math.ceil(policy.connect_timeout)),
                        application_name="aethon",
                    )
                    break
                except psycopg.OperationalError as exc:
                    last = str(exc)
            if conn is None:
                raise ConnectorError(f"Could not connect to PostgreSQL: {last.strip()}")
        try:
            with self._errors("PostgreSQL session setup failed"):
                conn.read_only = True
                configure(conn)
                timeout_ms = int(policy.read_timeout * 1000)
                conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(timeout_ms)))
                conn.execute("SET TimeZone = 'UTC'")
                conn.commit()
            yield conn
        finally:
            conn.close()

    def _dataset(self) -> sql.Composable:
        cfg = self.config
        if cfg.query:
            # Wrapping keeps the user's text a subquery: a second statement cannot follow.
            return sql.SQL("({}) AS aethon_q").format(sql.SQL(cfg.query))  # type: ignore[arg-type]
        return sql.Identifier(*self.table_ref)

    def _probe(self) -> pl.DataFrame:
        with self.connect() as conn, self._errors("Query failed"), conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(self._dataset()))
            return cursor_frame(cur, cur.fetchall())

    def fetch(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pl.DataFrame]:
        tracker = SchemaTracker()
        with (
            self.connect() as conn,
            self._errors("Query failed"),
            conn.transaction(),
            conn.cursor(name="aethon_fetch") as cur,
        ):
            cur.itersize = batch_size
            cur.execute(sql.SQL("SELECT * FROM {}").format(self._dataset()))
            while rows := cur.fetchmany(batch_size):
                yield tracker.stabilize(cursor_frame(cur, rows))

    def count(self) -> int | None:
        with self.connect() as conn, self._errors("Query failed"), conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(self._dataset()))
            row = cur.fetchone()
            return int(row[0]) if row else None
