"""MySQL / MariaDB connector (PyMySQL, imported lazily so it stays optional)."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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
    optional_int,
    optional_str,
    parse_key,
    require_str,
    unique_names,
)
from planner.connectors.guard import resolve_and_check

SSL_MODES = ("disable", "require")


def quote_ident(name: str) -> str:
    """Backtick-quote one identifier; backticks inside are doubled."""
    if not name or "\x00" in name:
        raise ConnectorError("Invalid identifier.")
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class MySQLConfig:
    host: str
    database: str
    user: str
    port: int = 3306
    table: str | None = None
    query: str | None = None
    ssl_mode: str = "disable"
    key: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> MySQLConfig:
        table, query = dataset_choice(config)
        ssl_mode = optional_str(config, "ssl_mode", "disable") or "disable"
        if ssl_mode not in SSL_MODES:
            raise ConnectorError(f"ssl_mode must be one of {', '.join(SSL_MODES)}.")
        return cls(
            host=require_str(config, "host", "Host"),
            database=require_str(config, "database", "Database"),
            user=require_str(config, "user", "User"),
            port=optional_int(config, "port", 3306, minimum=1),
            table=table,
            query=check_select_query(query, "mysql") if query else None,
            ssl_mode=ssl_mode,
            key=parse_key(config.get("key")),
        )


class MySQLConnector(BaseConnector):
    kind = "mysql"
    config_class = MySQLConfig
    config: MySQLConfig

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        try:
            import pymysql
            import pymysql.cursors
        except ImportError:
            raise ConnectorError("MySQL support needs the PyMySQL package.") from None
        cfg, policy = self.config, self.guard
        ips = resolve_and_check(cfg.host, cfg.port, policy)
        ssl_ctx = None
        if cfg.ssl_mode == "require":
            # We dial the pinned IP, so the certificate name cannot be checked (like
            # libpq's sslmode=require): encryption without identity verification.
            ssl_ctx = ssl.create_default_context()
            ssl_ctx.check_hostname = False
            ssl_ctx.verify_mode = ssl.CERT_NONE
        conn, last = None, ""
        with self._errors("Could not connect to MySQL"):
            for ip in ips:
                try:
                    conn = pymysql.connect(
                        host=ip,
                        port=cfg.port,
                        user=cfg.user,
                        password=self._secrets.get("password") or "",
                        database=cfg.database,
                        connect_timeout=policy.connect_timeout,
                        read_timeout=policy.read_timeout,
                        write_timeout=policy.read_timeout,
                        ssl=ssl_ctx,
                        charset="utf8mb4",
                        cursorclass=pymysql.cursors.SSCursor,
                        autocommit=False,
                    )
                    break
                except pymysql.err.OperationalError as exc:
                    last = str(exc.args[-1]) if exc.args else str(exc)
            if conn is None:
                raise ConnectorError(f"Could not connect to MySQL: {last}")
        try:
            with self._errors("MySQL session setup failed"), conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
                cur.execute("START TRANSACTION READ ONLY")
            yield conn
        finally:
            conn.close()

    def _dataset(self) -> str:
        if self.config.query:
            return f"({self.config.query}) AS aethon_q"
        return quote_ident(self.config.table or "")

    def _probe(self) -> pl.DataFrame:
        with self.connect() as conn, self._errors("Query failed"), conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {self._dataset()} LIMIT 1")  # noqa: S608 - quoted/checked
            rows = cur.fetchall()
            return frame_from_rows(unique_names(d[0] for d in cur.description), rows)

    def fetch(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pl.DataFrame]:
        tracker = SchemaTracker()
        with self.connect() as conn, self._errors("Query failed"), conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {self._dataset()}")  # noqa: S608 - quoted/checked
            columns = unique_names(d[0] for d in cur.description)
            while rows := cur.fetchmany(batch_size):
                yield tracker.stabilize(frame_from_rows(columns, rows))

    def count(self) -> int | None:
        with self.connect() as conn, self._errors("Query failed"), conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {self._dataset()}")  # noqa: S608 - quoted/checked
            row = cur.fetchone()
            return int(row[0]) if row else None
