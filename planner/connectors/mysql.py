"""MySQL / MariaDB connector (PyMySQL, imported lazily so it stays optional).

Sessions take one statement per request (no multi-statements), are read-only at the
session level and have a server-side time limit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from planner.connectors.base import (
    DEFAULT_BATCH_SIZE,
    BaseConnector,
    ConnectorError,
    SchemaTracker,
    frame_from_rows,
    one_of,
    quote_ident,
    server_address,
    sql_dataset,
    unique_names,
    utc_text,
)
from planner.connectors.guard import resolve_and_check
from planner.connectors.names import MYSQL_SSL_MODES as SSL_MODES

# pymysql FIELD_TYPE codes of text columns (VARCHAR, VAR_STRING, STRING, the BLOB/TEXT family).
_TEXT_TYPES = frozenset({15, 249, 250, 251, 252, 253, 254})
_TIME_TYPES = frozenset({7, 10, 12})  # TIMESTAMP, DATE, DATETIME
_FLOAT_TYPE = 4  # FLOAT (single precision)


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
        return cls(
            **server_address(config, 3306),
            **sql_dataset(config, "mysql"),
            ssl_mode=one_of(config, "ssl_mode", SSL_MODES, "disable"),
        )


class _RefuseCleartext:
    """PyMySQL auth plugin handler for methods that send the password as it is typed."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def authenticate(self, packet: Any) -> Any:
        import pymysql

        raise pymysql.err.OperationalError(
            2059,
            "the server asked for the password in clear text (mysql_clear_password or"
            " dialog); Aethon refused to send it",
        )


# Plugins that would put the password on the wire as typed; PyMySQL sends it when asked.
NO_CLEARTEXT_AUTH = {"mysql_clear_password": _RefuseCleartext, "dialog": _RefuseCleartext}
# Modes that change how MySQL reads quotes and backslashes: with them on, the server would
# split a query differently from the SQL check, so sessions always run without them.
_UNSAFE_SQL_MODES = frozenset({"ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "ANSI"})
# Global privileges that reach the server's files or bypass read-only settings.
_RISKY_PRIVILEGES = ("ALL PRIVILEGES", "SUPER", "FILE")
_GLOBAL_GRANT = re.compile(r"^GRANT\s+(.+?)\s+ON\s+\*\.\*\s+TO\s", re.IGNORECASE | re.DOTALL)


def safe_sql_mode(mode: str) -> str:
    return ",".join(m for m in mode.split(",") if m and m.upper() not in _UNSAFE_SQL_MODES)


def grant_warnings(user: str, grants: list[str]) -> list[str]:
    """Warnings for ``SHOW GRANTS`` lines that give global ALL/SUPER/FILE privileges."""
    found: list[str] = []
    for line in grants:
        match = _GLOBAL_GRANT.match(line.strip())
        if not match:
            continue
        privileges = {p.strip().upper() for p in match.group(1).split(",")}
        found += [p for p in _RISKY_PRIVILEGES if p in privileges and p not in found]
    if not found:
        return []
    return [
        f"The MySQL user '{user}' has the global {', '.join(found)} privilege"
        f"{'s' if len(found) > 1 else ''}: a query on this connection could read or write"
        " files on the database server (FILE) or lift the read-only setting (SUPER). Use a"
        " user that can only SELECT the tables you need (see docs/connectors.md)."
    ]


class MySQLConnector(BaseConnector):
    kind = "mysql"
    config_class = MySQLConfig
    config: MySQLConfig

    def _connect_args(self, ip: str, pymysql: Any) -> dict[str, Any]:
        cfg, policy = self.config, self.guard
        ssl_ctx = None
        if cfg.ssl_mode == "require":
            # We dial the pinned IP, so the certificate name cannot be checked (like
            # libpq's sslmode=require): encryption without identity verification.
            ssl_ctx = ssl.create_default_context()
            ssl_ctx.check_hostname = False
            ssl_ctx.verify_mode = ssl.CERT_NONE
        return {
            "host": ip,
            "port": cfg.port,
            "user": cfg.user,
            "password": self._secrets.get("password") or "",
            "database": cfg.database,
            "connect_timeout": policy.connect_timeout,
            # The server's own statement limit (set below) should end a slow query first,
            # with a clear message; the socket timeout is the fallback.
            "read_timeout": policy.read_timeout + 5,
            "write_timeout": policy.read_timeout,
            "ssl": ssl_ctx,
            "charset": "utf8mb4",
            "cursorclass": pymysql.cursors.SSCursor,
            "autocommit": False,
            # No CLIENT.MULTI_STATEMENTS: the server takes one statement per request.
            "client_flag": 0,
            # LOAD DATA LOCAL would let the server ask for any file on this machine.
            "local_infile": False,
            "auth_plugin_map": NO_CLEARTEXT_AUTH,
        }

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A session that reads one statement at a time, read-only, with a time limit."""
        try:
            import pymysql
            import pymysql.cursors
        except ImportError:
            raise ConnectorError("MySQL support needs the PyMySQL package.") from None
        cfg, policy = self.config, self.guard
        ips = resolve_and_check(cfg.host, cfg.port, policy)
        conn, last = None, ""
        with self._errors("Could not connect to MySQL"):
            for ip in ips:
                try:
                    conn = pymysql.connect(**self._connect_args(ip, pymysql))
                    break
                except pymysql.err.OperationalError as exc:
                    last = str(exc.args[-1]) if exc.args else str(exc)
            if conn is None:
                raise ConnectorError(f"Could not connect to MySQL: {last}")
        try:
            with self._errors("MySQL session setup failed"), conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
                cur.execute("SELECT @@SESSION.sql_mode")
                rows = cur.fetchall()  # all of it: the cursor is unbuffered
                mode = str(rows[0][0] or "") if rows else ""
                cur.execute("SET SESSION sql_mode = %s", (safe_sql_mode(mode),))
                if "mariadb" in conn.get_server_info().lower():
                    cur.execute("SET SESSION max_statement_time = %s", (policy.read_timeout,))
                else:
                    timeout_ms = max(1, int(policy.read_timeout * 1000))
                    cur.execute("SET SESSION max_execution_time = %s", (timeout_ms,))
                # Session level as well as this transaction: a COMMIT does not end it.
                cur.execute("SET SESSION TRANSACTION READ ONLY")
                cur.execute("START TRANSACTION READ ONLY")
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()
            conn.close()

    def _dataset(self) -> str:
        if self.config.query:
            # The newlines keep a trailing "-- comment" in the query from hiding the ")".
            return f"(\n{self.config.query}\n) AS aethon_q"
        return quote_ident(self.config.table or "", "`")

    def _probe(self) -> pl.DataFrame:
        return self._probe_report()[0]

    def _probe_report(self) -> tuple[pl.DataFrame, list[str]]:
        with self.connect() as conn:
            warnings = self._grant_warnings(conn)
            with self._errors("Query failed"), conn.cursor() as cur:
                select, dtypes = self._select_list(cur)
                cur.execute(f"SELECT {select} FROM {self._dataset()} LIMIT 1")  # noqa: S608
                rows = cur.fetchall()
                names = unique_names(d[0] for d in cur.description)
                frame = frame_from_rows(names, rows, dtypes)
            return frame, warnings

    def _select_list(self, cur: Any) -> tuple[str, dict[str, pl.DataType]]:
        """The dataset's columns as they are read, and the dtypes some must have.

        MariaDB prints a FLOAT column with six significant digits (1.0000001 as ``1``,
        16777216 as ``16777200``), so a difference in the seventh digit would vanish: such
        columns are read as the exact DOUBLE of the stored value (``+ 0e0``) and held as
        Float32, the precision they have (as PostgreSQL's ``real``).
        """
        cur.execute(f"SELECT * FROM {self._dataset()} LIMIT 0")  # noqa: S608 - checked
        described = [(d[0], d[1]) for d in cur.description]
        cur.fetchall()
        names = [name for name, _ in described]
        floats = [name for name, code in described if code == _FLOAT_TYPE]
        if not floats or len(set(names)) != len(names):
            return "*", {}
        items = [
            f"{quote_ident(name, '`')} + 0e0 AS {quote_ident(name, '`')}"
            if code == _FLOAT_TYPE
            else quote_ident(name, "`")
            for name, code in described
        ]
        return ", ".join(items), {name: pl.Float32() for name in floats}

    def _grant_warnings(self, conn: Any) -> list[str]:
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GRANTS")
                grants = [str(row[0]) for row in cur.fetchall()]
        except Exception as exc:  # noqa: BLE001 - a warning, never a failed test
            return [f"Could not check the MySQL user's privileges ({type(exc).__name__})."]
        return grant_warnings(self.config.user, grants)

    def fetch(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pl.DataFrame]:
        tracker = SchemaTracker()
        with self.connect() as conn, self._errors("Query failed"), conn.cursor() as cur:
            select, dtypes = self._select_list(cur)
            cur.execute(f"SELECT {select} FROM {self._dataset()}")  # noqa: S608 - quoted/checked
            columns = unique_names(d[0] for d in cur.description)
            while rows := cur.fetchmany(batch_size):
                yield tracker.stabilize(frame_from_rows(columns, rows, dtypes))

    dialect = "mysql"

    @contextlib.contextmanager
    def statements(self) -> Iterator[Callable[[Callable[[str], str]], list[tuple[Any, ...]]]]:
        """One read-only session for many generated SELECTs (key-range checksums)."""
        with self.connect() as conn, self._errors("Query failed"):

            def run(build: Callable[[str], str]) -> list[tuple[Any, ...]]:
                with conn.cursor() as cur:
                    cur.execute(build(self._dataset()))
                    return list(cur.fetchall())

            yield run

    def fetch_ordered(
        self,
        order_by: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        where: str | None = None,
        *,
        changed_since: tuple[str, dt.datetime] | None = None,
    ) -> Iterator[pl.DataFrame]:
        """Every record in ``order_by`` order, in batches (one unbuffered statement).

        Text sorts by its bytes (code point order, as polars sorts), not by a case-blind
        collation, and NULLs last: a key-ordered merge needs both systems to agree.
        ``changed_since=(field, instant)`` reads only records whose date/time ``field`` is
        at or after the instant (the session is in UTC); a text field is read whole.
        ``where`` (generated SQL, planner.runs.pushdown) limits the read to a key range.
        """
        tracker = SchemaTracker()
        with self.connect() as conn, self._errors("Query failed"), conn.cursor() as cur:
            select, dtypes = self._select_list(cur)
            cur.execute(f"SELECT * FROM {self._dataset()} LIMIT 0")  # noqa: S608 - checked
            types = {d[0]: d[1] for d in cur.description}
            cur.fetchall()
            missing = [k for k in order_by if k not in types]
            if missing:
                raise ConnectorError(f"The dataset has no field(s) {', '.join(missing)}.")
            order = ", ".join(
                f"{quote_ident(k, '`')} IS NULL, "
                + (
                    f"CAST({quote_ident(k, '`')} AS BINARY)"
                    if types[k] in _TEXT_TYPES
                    else quote_ident(k, "`")
                )
                for k in order_by
            )
            conditions = [f"({where})"] if where else []
            if changed_since is not None:
                name, instant = changed_since
                if name not in types:
                    raise ConnectorError(f"The dataset has no field {name}.")
                if types[name] in _TIME_TYPES:
                    # The literal is built from a datetime, never from user text.
                    conditions.append(f"{quote_ident(name, '`')} >= '{utc_text(instant)}'")
            where_sql = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            cur.execute(
                f"SELECT {select} FROM {self._dataset()}{where_sql} ORDER BY {order}"  # noqa: S608
            )
            columns = unique_names(d[0] for d in cur.description)
            while rows := cur.fetchmany(batch_size):
                yield tracker.stabilize(frame_from_rows(columns, rows, dtypes))

    def count(self) -> int | None:
        with self.connect() as conn, self._errors("Query failed"), conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {self._dataset()}")  # noqa: S608 - quoted/checked
            row = cur.fetchone()
            return int(row[0]) if row else None
