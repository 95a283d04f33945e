"""PostgreSQL connector (psycopg 3): read-only sessions, one statement per read."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    frame_from_rows,
    one_of,
    optional_str,
    server_address,
    sql_dataset,
    unique_names,
)
from planner.connectors.guard import resolve_and_check
from planner.connectors.names import POSTGRES_SSL_MODES as SSL_MODES

# Any method but the cleartext password (scram-sha-256, md5, gss, sspi, none/trust).
REQUIRE_AUTH = "!password"
_REQUIRE_AUTH_LIBPQ = 160000  # require_auth arrived in libpq 16

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
_TEXT_OIDS = frozenset({19, 25, 1042, 1043})  # name, text, char(n), varchar
_TIMESTAMPTZ_OID = 1184
_TIME_OIDS = frozenset({1082, 1114, _TIMESTAMPTZ_OID})  # date, timestamp, timestamptz
_DATETIME_OIDS = frozenset({1114, _TIMESTAMPTZ_OID})
# Types a key-ordered read may take through COPY: polars parses their CSV text to the value
# the cursor path loads (floats print shortest-exact; NaN/Infinity parse; "" is not NULL).
_COPY_OIDS = frozenset({16, 19, 20, 21, 23, 25, 700, 701, 1042, 1043, 1082, 1114, 1184})


def _copy_dtype(col: Any) -> pl.DataType | None:
    if col.type_code == _NUMERIC_OID:
        if col.precision and col.precision <= 38:
            return pl.Decimal(col.precision, col.scale or 0)
        return None  # unconstrained numeric: its scale differs per value
    if col.type_code in _COPY_OIDS:
        return _OID_DTYPES[col.type_code]
    return None


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
        return cls(
            **server_address(config, 5432),
            **sql_dataset(config, "postgres"),
            schema=optional_str(config, "schema"),
            sslmode=one_of(config, "sslmode", SSL_MODES, "prefer"),
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


def session_options(read_timeout: float) -> str:
    """libpq startup ``options``: limits that hold for the whole session.

    ``standard_conforming_strings`` is pinned because the SQL check parses backslashes the
    way PostgreSQL does with it on (the default); a server configured otherwise would read
    ``'\\'`` differently from the check. Values travel as text (COPY, the text protocol, the
    push-down's checksums), so the settings that shape that text are pinned too: a database
    or role set to ``extra_float_digits = 0`` would print 0.30000000000000004 as ``0.3`` and
    hide a difference from every comparison.
    """
    timeout_ms = max(1, int(read_timeout * 1000))
    return (
        "-c default_transaction_read_only=on"
        f" -c statement_timeout={timeout_ms}"
        " -c standard_conforming_strings=on"
        " -c TimeZone=UTC"
        " -c extra_float_digits=1"
        " -c DateStyle=ISO"
        " -c IntervalStyle=postgres"
        " -c bytea_output=hex"
    )


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
        """A read-only session on a checked, pinned IP address; rolled back, never committed.

        The limits are startup options, so they hold for the whole session: a ``COMMIT``
        cannot end them the way it ends a ``BEGIN READ ONLY`` transaction.
        """
        cfg, policy = self.config, self.guard
        if psycopg.pq.version() < _REQUIRE_AUTH_LIBPQ:
            raise ConnectorError(
                "PostgreSQL connections need libpq 16 or later, which can refuse to send a"
                " password in clear text (require_auth)."
            )
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
                        # A server (or anyone in the path) asking for the password in
                        # clear text gets nothing: libpq fails the connection instead.
                        require_auth=REQUIRE_AUTH,
                        # Never fall back to a password the Aethon host keeps for itself.
                        passfile=os.devnull,
                        sslmode=cfg.sslmode,
                        connect_timeout=max(2, math.ceil(policy.connect_timeout)),
                        application_name="aethon",
                        options=session_options(policy.read_timeout),
                    )
                    break
                except psycopg.OperationalError as exc:
                    last = str(exc)
            if conn is None:
                raise ConnectorError(f"Could not connect to PostgreSQL: {last.strip()}")
        try:
            conn.read_only = True
            with self._errors("PostgreSQL session setup failed"):
                configure(conn)
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()  # a read never commits: e.g. lo_import() writes even read-only
            conn.close()

    def _dataset(self) -> sql.Composable:
        cfg = self.config
        if cfg.query:
            # The newlines keep a trailing "-- comment" in the query from hiding the ")".
            return sql.SQL("(\n{}\n) AS aethon_q").format(sql.SQL(cfg.query))  # type: ignore[arg-type]
        return sql.Identifier(*self.table_ref)

    @staticmethod
    def _cursor(conn: psycopg.Connection[Any]) -> psycopg.ServerCursor[Any]:
        """Every dataset read goes through a server-side cursor.

        psycopg sends its ``DECLARE … CURSOR FOR …`` over the extended protocol, which
        takes exactly one statement ("cannot insert multiple commands into a prepared
        statement"), and PostgreSQL accepts only a SELECT without data-modifying WITH there.
        A plain ``execute()`` without parameters would use the simple protocol, which runs
        a whole script.
        """
        return conn.cursor(name="aethon_read")

    def _probe(self) -> pl.DataFrame:
        return self._probe_report()[0]

    def _probe_report(self) -> tuple[pl.DataFrame, list[str]]:
        with self.connect() as conn:
            warnings = role_warnings(conn)
            with self._errors("Query failed"), self._cursor(conn) as cur:
                cur.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(self._dataset()))
                return cursor_frame(cur, cur.fetchall()), warnings

    def fetch(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pl.DataFrame]:
        tracker = SchemaTracker()
        with self.connect() as conn, self._errors("Query failed"), self._cursor(conn) as cur:
            cur.itersize = batch_size
            cur.execute(sql.SQL("SELECT * FROM {}").format(self._dataset()))
            while rows := cur.fetchmany(batch_size):
                yield tracker.stabilize(cursor_frame(cur, rows))

    dialect = "postgres"

    @contextlib.contextmanager
    def statements(self) -> Iterator[Callable[[Callable[[str], str]], list[tuple[Any, ...]]]]:
        """One read-only session for many generated SELECTs (key-range checksums).

        ``run(build)`` executes ``build(dataset_sql)`` through a server-side cursor, which
        takes exactly one SELECT, and returns its rows.
        """
        with self.connect() as conn, self._errors("Query failed"):
            dataset = self._dataset().as_string(conn)

            def run(build: Callable[[str], str]) -> list[tuple[Any, ...]]:
                with self._cursor(conn) as cur:
                    cur.execute(sql.SQL(build(dataset)))  # type: ignore[arg-type]
                    return cur.fetchall()

            yield run

    def fetch_ordered(
        self,
        order_by: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        where: str | None = None,
        *,
        changed_since: tuple[str, dt.datetime] | None = None,
    ) -> Iterator[pl.DataFrame]:
        """Every record in ``order_by`` order, in batches, from one server-side cursor.

        Text columns sort by code point (``COLLATE "C"``), the order polars sorts strings
        in, whatever the database's collation: a key-ordered merge needs both systems and
        polars to agree on which key comes first ('B' < 'a'). NULLs sort last.

        ``changed_since=(field, instant)`` reads only records whose ``field`` is at or after
        the instant, when the field is a date or timestamp column (naive ones are UTC: the
        session's time zone); on a text field every record is read and the caller filters.

        ``where`` (generated SQL, planner.runs.pushdown) limits the read to a key range.
        """
        tracker = SchemaTracker()
        with self.connect() as conn, self._errors("Query failed"):
            with conn.cursor(name="aethon_describe") as cur:
                cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(self._dataset()))
                columns = list(cur.description or ())
            oids = {col.name: col.type_code for col in columns}
            missing = [k for k in order_by if k not in oids]
            if missing:
                raise ConnectorError(f"The dataset has no field(s) {', '.join(missing)}.")
            conditions: list[sql.Composable] = []
            if changed_since is not None:
                name, instant = changed_since
                if name not in oids:
                    raise ConnectorError(f"The dataset has no field {name}.")
                if oids[name] in _TIME_OIDS:
                    conditions.append(
                        sql.SQL("{} >= {}").format(sql.Identifier(name), sql.Literal(instant))
                    )
            if where:
                conditions.append(sql.SQL(f"({where})"))  # type: ignore[arg-type]
            filtered = sql.SQL("")
            if conditions:
                filtered = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)
            order = sql.SQL(", ").join(
                sql.SQL('{} COLLATE "C"' if oids[k] in _TEXT_OIDS else "{}").format(
                    sql.Identifier(k)
                )
                + sql.SQL(" NULLS LAST")
                for k in order_by
            )
            if self.config.table and all(_copy_dtype(c) is not None for c in columns):
                yield from self._copy_ordered(conn, columns, filtered, order, batch_size, tracker)
                return
            with self._cursor(conn) as cur:
                cur.itersize = batch_size
                statement = sql.SQL("SELECT * FROM {}{} ORDER BY {}")
                cur.execute(statement.format(self._dataset(), filtered, order))
                while rows := cur.fetchmany(batch_size):
                    yield tracker.stabilize(cursor_frame(cur, rows))

    def _copy_ordered(
        self,
        conn: psycopg.Connection[Any],
        columns: list[Any],
        where: sql.Composable,
        order: sql.Composable,
        batch_size: int,
        tracker: SchemaTracker,
    ) -> Iterator[pl.DataFrame]:
        """``COPY (SELECT … ORDER BY …) TO STDOUT`` parsed by polars' CSV reader.

        No Python object per value: several times faster than a cursor. Only for table
        datasets whose columns' CSV text polars parses to exactly what the cursor gives
        (``_copy_dtype``); the tests compare both readers on every such type.
        """
        select = sql.SQL(", ").join(copy_item(None, c) for c in columns)
        query = sql.SQL("SELECT {} FROM {}{} ORDER BY {}").format(
            select, self._dataset(), where, order
        )
        names = unique_names(c.name for c in columns)
        yield from copy_frames(conn, query, columns, names, batch_size, tracker)

    def same_database(self, other: object) -> bool:
        """Whether one session of this connector reads ``other``'s table as ``other`` would:
        the same server, database, role, password and TLS mode, both datasets tables."""
        if not isinstance(other, PostgresConnector):
            return False
        a, b = self.config, other.config
        return (
            bool(a.table and b.table)
            and (a.host, a.port, a.database, a.user, a.sslmode)
            == (b.host, b.port, b.database, b.user, b.sslmode)
            and self._secrets.get("password") == other._secrets.get("password")
        )

    @contextlib.contextmanager
    def snapshot(self, shared: str | None = None) -> Iterator[Snapshot]:
        """One read-only REPEATABLE READ session: all its statements see the same data.

        ``shared`` is a snapshot another session exported (:meth:`Snapshot.export`): this
        session then sees exactly what that one sees.
        """
        with self.connect() as conn, self._errors("Query failed"):
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            if shared is not None:
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(shared)))
            yield Snapshot(conn)

    def count(self) -> int | None:
        with self.connect() as conn, self._errors("Query failed"), self._cursor(conn) as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(self._dataset()))
            row = cur.fetchone()
            return int(row[0]) if row else None


def copy_item(qualifier: str | None, col: Any) -> sql.Composable:
    """One column of a COPY select list, as :func:`copy_frames` expects it; ``qualifier`` is
    the table alias, if any.

    Timestamps travel as integer microseconds since 1970 (UTC for timestamptz, nominal for
    timestamp): polars parses datetime text at about 2 s a million values, an integer at
    almost nothing. Whole minutes plus the microseconds within the minute are exact whether
    EXTRACT returns numeric (PostgreSQL 14+) or double precision.
    """
    ident = sql.Identifier(qualifier, col.name) if qualifier else sql.Identifier(col.name)
    if col.type_code in _DATETIME_OIDS:
        return sql.SQL(
            "EXTRACT(EPOCH FROM date_trunc('minute', {c}))::bigint * 1000000"
            " + EXTRACT(MICROSECONDS FROM {c})::bigint"
        ).format(c=ident)
    return ident


def copyable(columns: Sequence[Any]) -> bool:
    """Whether polars parses these columns' COPY text to exactly what a cursor loads."""
    return all(_copy_dtype(c) is not None for c in columns)


def copy_frames(
    conn: psycopg.Connection[Any],
    query: sql.Composable,
    columns: Sequence[Any],
    names: Sequence[str],
    batch_size: int,
    tracker: SchemaTracker | None = None,
) -> Iterator[pl.DataFrame]:
    """``COPY (query) TO STDOUT`` as frames of ``batch_size`` rows, parsed by polars.

    ``query`` selects ``columns`` (cursor descriptions, all :func:`copyable`) through
    :func:`copy_item`, in order; the frames' columns are called ``names``.
    """
    tracker = tracker or SchemaTracker()
    read_as: dict[str, pl.DataType] = {}
    finish = []
    for name, col in zip(names, columns, strict=True):
        if col.type_code == 16:  # boolean prints as t / f
            read_as[name] = pl.String()
            finish.append(
                pl.when(pl.col(name).is_null())
                .then(None)
                .otherwise(pl.col(name) == "t")
                .alias(name)
            )
        elif col.type_code in _DATETIME_OIDS:
            read_as[name] = pl.Int64()
            instant = pl.col(name).cast(pl.Datetime("us"))
            if col.type_code == _TIMESTAMPTZ_OID:
                instant = instant.dt.replace_time_zone("UTC")
            finish.append(instant.alias(name))
        else:
            read_as[name] = _copy_dtype(col)  # type: ignore[assignment]
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)

    def parse(data: bytearray) -> pl.DataFrame:
        frame = pl.read_csv(bytes(data), has_header=False, new_columns=list(names), schema=read_as)
        return tracker.stabilize(frame.with_columns(finish) if finish else frame)

    with conn.cursor() as cur, cur.copy(statement) as copy:
        for rows in _copy_batches(conn, copy, batch_size):
            yield parse(rows)


class Snapshot:
    """Statements in one read-only, repeatable-read session (:meth:`PostgresConnector.snapshot`)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def export(self) -> str:
        """This session's snapshot, for :meth:`PostgresConnector.snapshot` in another."""
        return str(self.rows("SELECT pg_export_snapshot()")[0][0])

    def dataset(self, connector: PostgresConnector) -> str:
        """``connector``'s dataset as SQL text for this session."""
        return connector._dataset().as_string(self.conn)

    def columns(self, dataset: str) -> list[Any]:
        """The cursor descriptions of a dataset's columns."""
        with self.conn.cursor(name="aethon_describe") as cur:
            cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(sql.SQL(dataset)))  # type: ignore[arg-type]
            return list(cur.description or ())

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A generated SELECT's rows, through a server-side cursor (one statement only)."""
        with self.conn.cursor(name="aethon_read") as cur:
            cur.execute(sql.SQL(query), params or None)  # type: ignore[arg-type]
            return cur.fetchall()

    def frames(
        self, query: str, columns: Sequence[Any], names: Sequence[str], batch_size: int
    ) -> Iterator[pl.DataFrame]:
        """A generated SELECT of ``columns`` (each through :func:`copy_item`) as frames."""
        yield from copy_frames(self.conn, sql.SQL(query), columns, names, batch_size)  # type: ignore[arg-type]


def _copy_batches(
    conn: psycopg.Connection[Any], copy: psycopg.Copy, batch_rows: int
) -> Iterator[bytearray]:
    """The data of a ``COPY … TO STDOUT`` in batches of ``batch_rows`` whole rows.

    ``Copy.read`` costs several Python generator frames per row, most of a million-row read.
    Rows libpq has already received are taken straight from it (``get_copy_data`` without
    blocking) in a tight loop; only when it has none does ``Copy.read`` wait for the network.
    When libpq reports the end of the data, the command's result is fetched here and the
    copy marked finished, which is what ``Copy.read`` does at the end (psycopg has no public
    call for it; without its flag every row goes through ``Copy.read``).
    """
    buf, n = bytearray(), 0
    if not hasattr(copy, "_finished"):
        for row in copy:  # libpq hands over whole rows
            buf += row
            n += 1
            if n >= batch_rows:
                yield buf
                buf, n = bytearray(), 0
        if n:
            yield buf
        return
    pgconn = conn.pgconn
    take = pgconn.get_copy_data
    while True:
        nbytes, data = take(1)
        if nbytes == 0:  # nothing received yet: let psycopg wait for it
            data = copy.read()
            nbytes = len(data) or -1
        if nbytes < 0:
            break
        buf += data
        n += 1
        if n >= batch_rows:
            yield buf
            buf, n = bytearray(), 0
    if not copy._finished:
        # libpq reported the end itself: the final result says whether the COPY succeeded.
        copy._finished = True
        results = []
        while (result := pgconn.get_result()) is not None:
            results.append(result)  # every one, so the connection is free again
        for result in results:
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
    if n:
        yield buf


# Roles that reach outside the database: a SELECT calling pg_read_file(), lo_import() or
# COPY … PROGRAM (in a function) works for them even in a read-only session.
_SERVER_ROLES = {
    "pg_read_server_files": "read files on the database server",
    "pg_write_server_files": "write files on the database server",
    "pg_execute_server_program": "run programs on the database server",
}
_ROLE_CHECK = sql.SQL(
    "SELECT r.rolname::text, r.rolsuper, ARRAY("
    " SELECT g.rolname::text FROM pg_roles g"
    " WHERE g.rolname = ANY({}) AND pg_has_role(r.oid, g.oid, 'MEMBER') ORDER BY 1)"
    " FROM pg_roles r WHERE r.rolname = current_user"
).format(sql.Literal(list(_SERVER_ROLES)))
_LEAST_PRIVILEGE = "Use a role that can only read the tables you need (see docs/connectors.md)."


def role_warnings(conn: psycopg.Connection[Any]) -> list[str]:
    """What "Test connection" should warn about the role this session logged in as."""
    try:
        row = conn.execute(_ROLE_CHECK).fetchone()
    except psycopg.Error as exc:
        conn.rollback()
        return [f"Could not check the PostgreSQL role's privileges ({type(exc).__name__})."]
    conn.rollback()
    if row is None:
        return []
    name, superuser, members = row
    if superuser:
        return [
            f"The role '{name}' is a PostgreSQL superuser: a query on this connection could"
            " read and write files and run programs on the database server, and no permission"
            f" applies to it. {_LEAST_PRIVILEGE}"
        ]
    if members:
        can = ", ".join(_SERVER_ROLES[m] for m in members)
        return [
            f"The role '{name}' is a member of {', '.join(members)}: a query on this"
            f" connection could {can}. {_LEAST_PRIVILEGE}"
        ]
    return []
