"""User SQL can read, never write or escape.

Each attack is tried twice: through the public path (the dataset query is refused when the
connection is configured) and with the SQL check bypassed (a connector built straight from its
config dataclass, as a query stored before the check existed would reach a scheduled run), to
show that the database session itself refuses: one statement over the extended protocol, a
read-only session, a statement timeout, and a rollback after every read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.urls import reverse

from planner.connectors import ConnectorError, GuardPolicy, check_select_query, fetch_all
from planner.connectors import open_connector as open_
from planner.connectors.mysql import MySQLConfig, MySQLConnector
from planner.connectors.postgres import PostgresConfig, PostgresConnector
from planner.connectors.sqlite import SqliteConfig, SqliteConnector
from tests.connectors import PG_DSN, loopback_only, pg_admin, pg_database  # noqa: F401 - fixture

POLICY = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}))
# Per process: other test runs on this machine may use the same servers at the same time.
PG_DB = f"aethon_sql_guard_{os.getpid()}"
PG_BASE = {"host": "127.0.0.1", "port": 5432, "database": PG_DB, "user": "postgres", "key": "a"}
PWNED = Path(f"/tmp/aethon_pwned_{uuid.uuid4().hex}.txt")  # noqa: S108 - the server's /tmp

# The reviewer's payloads, exactly as typed into the dataset field.
E_STRING = r"SELECT E'\'' AS a) AS q; COMMIT; DROP TABLE victim; --'"
E_STRING_COPY = (
    r"SELECT E'\'' AS a) AS q; COPY (SELECT current_user) TO PROGRAM 'id > "
    + str(PWNED)
    + r"'; --'"
)
# ``a$b$`` is one identifier in PostgreSQL; a tokenizer that takes ``$b$`` for the start of
# a dollar-quoted string hides everything up to the next ``$b$``.
DOLLAR = "SELECT 1 AS a$b$) AS q; COMMIT; DROP TABLE victim; --$b$"
# Shaped to be a valid script around the connector's own ``SELECT * FROM (…) AS aethon_q``
# wrapper, so only the protocol and the session stand between it and the table.
SCRIPT = "SELECT 1 AS a) AS q; COMMIT; DROP TABLE victim; SELECT * FROM (SELECT 1 AS a"
SCRIPT_COPY = (
    "SELECT 1 AS a) AS q; COPY (SELECT current_user) TO PROGRAM 'id > "
    + str(PWNED)
    + "'; SELECT * FROM (SELECT 1 AS a"
)
SCRIPT_SET = (
    "SELECT 1 AS a) AS q; SET default_transaction_read_only = off; COMMIT; DROP TABLE victim; "
    "SELECT * FROM (SELECT 1 AS a"
)


# ================================================================ the parser


@pytest.mark.parametrize(
    ("sql", "dialect", "body"),
    [
        ("SELECT * FROM t", "postgres", "SELECT * FROM t"),
        ("select a, b from t where c = 'x; drop table t' -- trailing; comment", "postgres", None),
        ("SELECT $$update; delete$$ AS s", "postgres", None),
        ("SELECT `update` FROM t", "mysql", None),
        (
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x;",
            "postgres",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        ),
        ("SELECT a FROM t UNION ALL SELECT b FROM u ORDER BY 1", "postgres", None),
        ("(SELECT 1) UNION (SELECT 2)", "postgres", None),
        ("SELECT $$update; delete$$ AS s, $q$;$q$ AS t", "postgres", None),
        (r"SELECT E'it\'s; drop' AS s", "postgres", None),
        ("SELECT x::int, y->>'k', z @> '{}' FROM t WHERE a ~* 'b'", "postgres", None),
        ('SELECT "delete", 1 AS a$b$ FROM t', "postgres", None),
        ("SELECT replace(name, 'a', 'b') FROM t", "mysql", None),
        ("SELECT `update` FROM t # note", "mysql", None),
        ("SELECT 'a\\' ; ' FROM t", "mysql", None),
        # Backslash escapes are on in MySQL sessions (NO_BACKSLASH_ESCAPES is cleared), so
        # this is one string there too.
        ("SELECT '\\' ; DROP TABLE t; #' AS s", "mysql", None),
        ("SELECT 1 /* a plain comment */ FROM t", "mysql", None),
        ("SELECT 'it''s' /* delete; */ AS s ;  ", "sqlite", "SELECT 'it''s' /* delete; */ AS s"),
        ('SELECT [odd name] FROM "t"', "sqlite", None),
    ],
)
def test_a_single_select_is_accepted(sql: str, dialect: str, body: str | None) -> None:
    assert check_select_query(sql, dialect) == (body or sql.strip())


@pytest.mark.parametrize(
    ("sql", "dialect", "message"),
    [
        # The reviewer's payloads and their relatives.
        (E_STRING, "postgres", "single SELECT statement: "),
        (E_STRING_COPY, "postgres", "single SELECT statement: "),
        (DOLLAR, "postgres", "single SELECT statement: "),
        (SCRIPT, "postgres", "single SELECT statement: "),
        ("COPY (SELECT current_user) TO PROGRAM 'id'", "postgres", "COPY is not allowed"),
        ("SELECT 1; COMMIT; DROP TABLE victim", "postgres", "single SELECT statement. It has 3"),
        ("COMMIT; DROP TABLE victim", "postgres", "single SELECT statement. It has 2"),
        ("SET default_transaction_read_only = off", "postgres", "SET is not allowed"),
        ("DELETE FROM t", "postgres", "must be a SELECT statement (DELETE is not allowed)"),
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "postgres",
            "DELETE is not allowed",
        ),
        ("WITH d AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM d", "postgres", "INSERT"),
        ("SELECT * INTO new_t FROM t", "postgres", "INTO is not allowed"),
        ("SELECT * FROM t FOR UPDATE", "postgres", "FOR UPDATE/SHARE is not allowed"),
        ("SELECT * FROM t FOR NO KEY UPDATE", "postgres", "FOR UPDATE/SHARE is not allowed"),
        ("SELECT * FROM t FOR SHARE", "postgres", "FOR UPDATE/SHARE is not allowed"),
        ("SELECT pg_read_file('/etc/passwd')", "postgres", "pg_read_file() is not allowed"),
        ("SELECT lo_import('/etc/passwd')", "postgres", "lo_import() is not allowed"),
        ("SELECT pg_catalog.set_config('statement_timeout', '0', false)", "postgres", "set_config"),
        ("SELECT \"set_config\"('a', 'b', false)", "postgres", "set_config() is not allowed"),
        ("SELECT query_to_xml('DROP TABLE t', true, false, '')", "postgres", "query_to_xml"),
        ("SELECT 'unterminated", "postgres", "single SELECT statement: "),
        ("SELECT 1 /* open", "postgres", "single SELECT statement: "),
        # In PostgreSQL a backslash does not escape a quote: the ';' is outside the string.
        ("SELECT 'a\\' ; DROP TABLE t; --'", "postgres", "single SELECT statement"),
        # '#' is an operator in PostgreSQL, not a comment that could hide a statement.
        ("SELECT 1 # 2 ; DROP TABLE t", "postgres", "single SELECT statement"),
        ("SELECT 1 -- x\n; DROP TABLE t", "postgres", "single SELECT statement"),
        ("SELECT 1; DELETE FROM t", "postgres", "single SELECT statement. It has 2"),
        ("SELECT 1; SELECT 2", "postgres", "single SELECT statement. It has 2"),
        ("", "postgres", "single SELECT statement"),
        ("", "sqlite", "single SELECT statement: it is empty"),
        ("  ;  ", "postgres", "single SELECT statement"),
        # MySQL runs the text of executable comments; optimizer hints change the session.
        ("SELECT 1 /*! ; DROP TABLE victim */", "mysql", "executable comments"),
        ("SELECT 1 /*!50000 , sleep(100) */ FROM t", "mysql", "executable comments"),
        ("SELECT 1 /*M! , sleep(100) */ FROM t", "mysql", "executable comments"),
        ("SELECT /*+ MAX_EXECUTION_TIME(0) */ * FROM t", "mysql", "optimizer hints"),
        ("SELECT * FROM t /*+ x */", "mysql", "optimizer hints"),
        ("SELECT * FROM t INTO OUTFILE '/tmp/x'", "mysql", "INTO is not allowed"),
        ("SELECT * FROM t INTO DUMPFILE '/tmp/x'", "mysql", "INTO is not allowed"),
        ("SELECT a INTO @x FROM t", "mysql", "INTO is not allowed"),
        ("SELECT * FROM t LOCK IN SHARE MODE", "mysql", "FOR UPDATE/SHARE is not allowed"),
        ("SELECT * FROM t FOR UPDATE", "mysql", "FOR UPDATE/SHARE is not allowed"),
        ("SELECT load_file('/etc/passwd')", "mysql", "load_file() is not allowed"),
        ("REPLACE INTO t VALUES (1)", "mysql", "SELECT statement (REPLACE is not allowed)"),
        ("SELECT 1 FROM t; REPLACE INTO t VALUES (1)", "mysql", "single SELECT statement"),
        ("SELECT 1; DROP TABLE victim", "sqlite", "single SELECT statement. It has 2"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "sqlite", "ATTACH is not allowed"),
        ("PRAGMA writable_schema = 1", "sqlite", "PRAGMA is not allowed"),
        ("VACUUM INTO '/tmp/copy.db'", "sqlite", "VACUUM is not allowed"),
        ("SELECT load_extension('/tmp/evil.so')", "sqlite", "load_extension() is not allowed"),
    ],
)
def test_anything_but_one_select_is_refused(sql: str, dialect: str, message: str) -> None:
    with pytest.raises(ConnectorError, match="^The query ") as caught:
        check_select_query(sql, dialect)
    assert message in caught.value.message
    assert "\x1b" not in caught.value.message  # no terminal colour codes from the parser


def test_a_trailing_comment_cannot_swallow_the_connectors_wrapper(victim: str) -> None:
    frame = fetch_all(pg_conn(query="SELECT a FROM victim ORDER BY a -- the ids"))
    assert frame.get_column("a").to_list() == [1, 2, 3]
    assert pg_conn(query="SELECT a FROM victim -- note").count() == 3


# ================================================================ PostgreSQL


@pytest.fixture(scope="module")
def pg_db() -> Iterator[str]:
    with pg_database(PG_DB) as name:
        yield name


@pytest.fixture
def victim(pg_db: str) -> Iterator[str]:
    """A fresh table of three rows; every attack tries to remove or change it."""
    PWNED.unlink(missing_ok=True)
    with psycopg.connect(f"{PG_DSN} dbname={pg_db}", autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS victim")
        db.execute("CREATE TABLE victim (a int PRIMARY KEY)")
        db.execute("INSERT INTO victim VALUES (1), (2), (3)")
    yield "victim"
    assert not PWNED.exists(), "a program ran on the database server"


def pg_state() -> tuple[Any, ...]:
    """Everything an attack below could change: the table, its rows, large objects."""
    with psycopg.connect(f"{PG_DSN} dbname={PG_DB}", autocommit=True) as db:
        exists = db.execute("SELECT to_regclass('public.victim') IS NOT NULL").fetchone()
        rows = (
            db.execute("SELECT array_agg(a ORDER BY a) FROM victim").fetchone()
            if exists[0]
            else None
        )
        objects = db.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
        return exists, rows, objects


INTACT = ((True,), ([1, 2, 3],), (0,))


def pg_conn(policy: GuardPolicy = POLICY, **extra: Any) -> Any:
    return open_("postgres", {**PG_BASE, **extra}, {"password": "not-used"}, policy)


def pg_unchecked(query: str, policy: GuardPolicy = POLICY, **extra: Any) -> PostgresConnector:
    """A connector whose query never went through the SQL check."""
    config = PostgresConfig(
        host="127.0.0.1", database=PG_DB, user="postgres", query=query, key=["a"], **extra
    )
    return PostgresConnector(config, {}, policy)


@pytest.mark.parametrize(
    "payload",
    [E_STRING, E_STRING_COPY, DOLLAR, SCRIPT, SCRIPT_COPY, SCRIPT_SET],
    ids=["e-string", "e-string-copy-program", "dollar", "script", "script-copy", "script-set"],
)
def test_pg_attack_is_refused_and_changes_nothing(victim: str, payload: str) -> None:
    with pytest.raises(ConnectorError, match="single SELECT statement"):
        pg_conn(query=payload)
    # Bypassing the check: the database refuses a second statement in the same request.
    unchecked = pg_unchecked(payload)
    report = unchecked.test()
    assert not report.ok and report.error
    with pytest.raises(ConnectorError):
        fetch_all(unchecked)
    with pytest.raises(ConnectorError):
        unchecked.count()
    assert pg_state() == INTACT


def test_pg_script_is_refused_as_multiple_commands(victim: str) -> None:
    report = pg_unchecked(SCRIPT).test()
    assert "cannot insert multiple commands into a prepared statement" in report.error
    assert pg_state() == INTACT


def test_pg_user_sql_only_travels_over_the_extended_protocol(
    victim: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """libpq's protocol trace: the user's text may appear in a Parse message, never a Query.

    A simple-protocol Query message runs a whole script; Parse takes one statement.
    """
    from psycopg import pq

    trace = (tmp_path / "libpq.trace").open("w")
    real_connect = psycopg.connect

    def traced(*args: Any, **kwargs: Any) -> Any:
        conn = real_connect(*args, **kwargs)
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        return conn

    monkeypatch.setattr(psycopg, "connect", traced)
    connector = pg_conn(query="SELECT a, 'aethon-marker' AS m FROM victim")
    assert connector.test().ok
    assert fetch_all(connector).height == 3
    assert connector.count() == 3
    trace.close()
    messages: list[str] = []  # one per protocol message; SQL text may span lines
    for line in (tmp_path / "libpq.trace").read_text().splitlines():
        if line[:2] in ("F\t", "B\t"):
            messages.append(line)
        elif messages:
            messages[-1] += "\n" + line
    sent = [m for m in messages if m.startswith("F")]
    carrying = [m.split("\t")[2].strip() for m in sent if "aethon-marker" in m]
    assert carrying == ["Parse", "Parse", "Parse"], sent


@pytest.mark.parametrize(
    ("query", "database_says"),
    [
        ("SELECT a FROM victim FOR UPDATE", "read-only transaction"),
        ("SELECT a FROM victim FOR NO KEY UPDATE", "read-only transaction"),
        (
            "WITH gone AS (DELETE FROM victim RETURNING a) SELECT a FROM gone",
            "data-modifying",
        ),
        ("SELECT a FROM victim; DELETE FROM victim", "syntax error"),
        ("SET default_transaction_read_only = off", "syntax error"),
        ("COPY victim TO PROGRAM 'id'", "syntax error"),
        ("SELECT a FROM victim FOR SHARE", "read-only transaction"),
    ],
)
def test_pg_session_refuses_writes_the_parser_would_also_refuse(
    victim: str, query: str, database_says: str
) -> None:
    unchecked = pg_unchecked(query)
    for attempt in (unchecked.test, lambda: fetch_all(unchecked), unchecked.count):
        try:
            result = attempt()
        except ConnectorError as exc:
            message = exc.message
        else:
            assert not result.ok
            message = result.error
        assert database_says in message
    assert pg_state() == INTACT


def test_pg_functions_that_write_are_rolled_back(victim: str) -> None:
    """lo_import writes a large object even in a read-only transaction: never commit it."""
    unchecked = pg_unchecked("SELECT lo_import('/etc/hostname') AS a")
    assert unchecked.test().ok
    assert fetch_all(unchecked).height == 1
    assert unchecked.count() == 1
    assert pg_state() == INTACT


def test_pg_session_is_read_only_at_session_level(victim: str) -> None:
    """Even a raw multi-statement script (simple protocol) cannot COMMIT its way out."""
    connector = pg_conn(table="victim")
    with connector.connect() as pg:
        assert pg.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert pg.execute("SHOW statement_timeout").fetchone() == ("30s",)
        assert pg.execute("SHOW standard_conforming_strings").fetchone() == ("on",)
        pg.rollback()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            pg.execute("COMMIT; DROP TABLE victim")
        pg.rollback()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            pg.execute("COMMIT; BEGIN; DELETE FROM victim")
    assert pg_state() == INTACT


def test_pg_statement_timeout_stops_a_long_query(victim: str) -> None:
    quick = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}), read_timeout=1.0)
    connector = pg_conn(quick, query="SELECT pg_sleep(20) AS a")
    start = time.monotonic()
    report = connector.test()
    assert not report.ok and "statement timeout" in report.error
    with pytest.raises(ConnectorError, match="statement timeout"):
        fetch_all(connector)
    assert time.monotonic() - start < 8


def test_pg_superuser_is_warned_about(victim: str) -> None:
    report = pg_conn(table="victim").test()
    assert report.ok, report.error
    assert any("superuser" in w and "'postgres'" in w for w in report.warnings)
    assert report.to_dict()["warnings"] == report.warnings
    # The file readers are functions inside a SELECT: only the role's rights stop them.
    unchecked = pg_unchecked("SELECT 1 AS a, pg_read_file('/etc/hostname') AS leaked")
    report = unchecked.test()
    assert report.ok and report.warnings


@pytest.fixture
def reader_role(victim: str) -> Iterator[str]:
    admin = pg_admin()
    role = f"aethon_sql_guard_reader_{os.getpid()}"
    try:
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN")
        with psycopg.connect(f"{PG_DSN} dbname={PG_DB}", autocommit=True) as db:
            db.execute(f"GRANT SELECT ON victim TO {role}")
        yield role
    finally:
        with psycopg.connect(f"{PG_DSN} dbname={PG_DB}", autocommit=True) as db:
            db.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


def test_pg_least_privilege_role_has_no_warning_but_file_roles_do(reader_role: str) -> None:
    report = pg_conn(table="victim", user=reader_role).test()
    assert report.ok, report.error
    assert report.warnings == []
    admin = pg_admin()
    try:
        admin.execute(f"GRANT pg_read_server_files, pg_execute_server_program TO {reader_role}")
        report = pg_conn(table="victim", user=reader_role).test()
    finally:
        admin.execute(f"REVOKE pg_read_server_files, pg_execute_server_program FROM {reader_role}")
        admin.close()
    assert report.ok
    assert len(report.warnings) == 1
    assert "pg_read_server_files" in report.warnings[0]
    assert "pg_execute_server_program" in report.warnings[0]


# ---------------------------------------------------------------- cleartext password


class CleartextPgServer:
    """Speaks just enough of the PostgreSQL protocol to ask for a cleartext password.

    Serves at most three connections and gives up after a few seconds, so a client that
    misbehaves cannot hang the test.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.asked = 0  # times we asked for a cleartext password
        self.received = bytearray()  # everything sent after we asked
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> CleartextPgServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.thread.join(timeout=10)
        self.sock.close()

    def _serve(self) -> None:
        deadline = time.monotonic() + 8
        for _ in range(3):
            if time.monotonic() > deadline:
                return
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.sock.settimeout(1)  # a retry comes at once, or not at all
            with client:
                client.settimeout(3)
                with contextlib.suppress(OSError):
                    self._handle(client)

    def _handle(self, client: socket.socket) -> None:
        for _ in range(3):  # SSLRequest / GSSENCRequest first, then the StartupMessage
            head = _recv_exact(client, 8)
            if head is None:
                return
            length, code = struct.unpack("!ii", head)
            if _recv_exact(client, length - 8) is None:
                return
            if code in (80877103, 80877104):
                client.sendall(b"N")
                continue
            break
        else:
            return
        client.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        self.asked += 1
        while len(self.received) < 65536:
            chunk = client.recv(4096)
            if not chunk:
                return
            self.received += chunk
            if self.received[:1] == b"p":  # a PasswordMessage: end it like a failed login
                error = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
                client.sendall(b"E" + struct.pack("!i", len(error) + 4) + error)
                return


def _recv_exact(client: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = client.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def test_pg_never_sends_a_password_in_clear_text() -> None:
    secret = "cleartext-" + uuid.uuid4().hex
    with CleartextPgServer() as server:
        connector = open_(
            "postgres",
            {**PG_BASE, "port": server.port, "table": "victim", "sslmode": "prefer"},
            {"password": secret},
            POLICY,
        )
        report = connector.test()
    assert server.asked >= 1  # the fake server did get as far as asking
    assert secret.encode() not in server.received
    assert not server.received.startswith(b"p")
    assert not report.ok and "cleartext" in report.error and secret not in report.error


# ---------------------------------------------------------------- the page


@pytest.fixture
def pg_system(project: Any, settings: Any) -> Any:
    from tests.factories import SystemFactory

    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    return SystemFactory(project=project, name="Billing")


def post_test(client: Any, system: Any, dataset: str) -> str:
    url = reverse("planner:system_test", args=[system.project_id, system.pk])
    data = {
        "kind": "postgres",
        "host": "127.0.0.1",
        "port": "5432",
        "database": PG_DB,
        "user": "postgres",
        "dataset": dataset,
        "key_fields": "a",
        "sslmode": "disable",
    }
    return client.post(url, data, HTTP_HX_REQUEST="true").content.decode()


def test_test_connection_page_shows_the_superuser_warning(
    owner_client: Any, pg_system: Any, victim: str
) -> None:
    html = post_test(owner_client, pg_system, "victim")
    assert "✓ Connected" in html
    assert 'data-testid="connection-warnings"' in html
    assert "superuser" in html


def test_test_connection_refuses_the_reviewers_payload(
    owner_client: Any, pg_system: Any, victim: str
) -> None:
    for payload in (E_STRING, E_STRING_COPY, DOLLAR):
        html = post_test(owner_client, pg_system, payload)
        assert "✓ Connected" not in html
        assert "Fix the settings first" in html
        assert "The query must be a single SELECT statement" in html
    assert pg_state() == INTACT


# ================================================================ MySQL


class FakeMySQL:
    """Stands in for pymysql.connect: records the arguments and the session statements."""

    def __init__(self, server: str = "8.0.36", sql_mode: str = "") -> None:
        self.server, self.sql_mode = server, sql_mode
        self.kwargs: dict[str, Any] = {}
        self.statements: list[tuple[str, Any]] = []

    def connect(self, **kwargs: Any) -> Any:
        self.kwargs = kwargs
        fake = self

        class Cursor:
            description = (("a",),)

            def __enter__(self) -> Cursor:
                return self

            def __exit__(self, *exc: Any) -> None:
                pass

            def execute(self, sql: str, args: Any = None) -> int:
                fake.statements.append((sql, args))
                return 0

            def fetchall(self) -> list[Any]:
                return [(fake.sql_mode,)] if "sql_mode" in fake.statements[-1][0] else []

            def fetchmany(self, size: int) -> list[Any]:
                return []

            def close(self) -> None:
                pass

        class Connection:
            def cursor(self) -> Cursor:
                return Cursor()

            def get_server_info(self) -> str:
                return fake.server

            def rollback(self) -> None:
                fake.statements.append(("ROLLBACK", None))

            def close(self) -> None:
                pass

        return Connection()


def mysql_unchecked(query: str, policy: GuardPolicy = POLICY) -> MySQLConnector:
    config = MySQLConfig(host="127.0.0.1", database="test", user="root", query=query, key=["a"])
    return MySQLConnector(config, {}, policy)


@pytest.mark.parametrize(
    ("server", "timeout_statement"),
    [
        ("8.0.36", "SET SESSION max_execution_time = %s"),
        ("5.5.5-10.11.19-MariaDB", "SET SESSION max_statement_time = %s"),
    ],
)
def test_mysql_connection_arguments_and_session(
    monkeypatch: pytest.MonkeyPatch, server: str, timeout_statement: str
) -> None:
    pymysql = pytest.importorskip("pymysql")
    from pymysql.constants import CLIENT

    fake = FakeMySQL(server, sql_mode="ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES")
    monkeypatch.setattr(pymysql, "connect", fake.connect)
    policy = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}), read_timeout=7.0)
    with mysql_unchecked("SELECT 1 AS a", policy).connect():
        pass
    kwargs = fake.kwargs
    assert not kwargs["client_flag"] & CLIENT.MULTI_STATEMENTS
    assert kwargs["local_infile"] is False  # a server may not ask for our files
    assert kwargs["autocommit"] is False
    plugins = kwargs["auth_plugin_map"]
    for name in ("mysql_clear_password", "dialog"):
        with pytest.raises(pymysql.err.OperationalError, match="clear text"):
            plugins[name](object()).authenticate(None)
    statements = [s for s, _ in fake.statements]
    assert (timeout_statement, (7000 if "max_execution" in timeout_statement else 7.0)) in [
        (s, a[0] if isinstance(a, tuple | list) else a) for s, a in fake.statements
    ]
    mode = next(a for s, a in fake.statements if s.startswith("SET SESSION sql_mode"))
    assert mode == ("STRICT_TRANS_TABLES",)
    assert statements.index("SET SESSION TRANSACTION READ ONLY") < statements.index(
        "START TRANSACTION READ ONLY"
    )


def test_mysql_grants_that_reach_files_are_warned_about() -> None:
    from planner.connectors.mysql import grant_warnings

    assert grant_warnings("root", ["GRANT ALL PRIVILEGES ON *.* TO `root`@`%` WITH GRANT OPTION"])
    assert "FILE" in grant_warnings("etl", ["GRANT SELECT, FILE ON *.* TO `etl`@`%`"])[0]
    assert "SUPER" in grant_warnings("etl", ["GRANT SUPER ON *.* TO 'etl'@'%'"])[0]
    assert grant_warnings("etl", ["GRANT SELECT ON `crm`.* TO `etl`@`%`"]) == []
    # ALL on one database does not include FILE/SUPER (they are global only).
    assert grant_warnings("etl", ["GRANT ALL PRIVILEGES ON `crm`.* TO `etl`@`%`"]) == []


MYSQL_VICTIM = f"aethon_sql_guard_victim_{os.getpid()}"


@pytest.fixture
def mysql_victim() -> Iterator[Any]:
    pymysql = pytest.importorskip("pymysql")
    try:
        db = pymysql.connect(
            host="127.0.0.1",
            user="root",
            password="",
            database="test",
            connect_timeout=3,
            autocommit=True,
        )
    except pymysql.err.MySQLError as exc:
        pytest.skip(f"MySQL/MariaDB on 127.0.0.1:3306 is unreachable: {exc}")
    with db.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{MYSQL_VICTIM}`")
        cur.execute(f"CREATE TABLE `{MYSQL_VICTIM}` (a INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO `{MYSQL_VICTIM}` VALUES (1), (2), (3)")

    def rows() -> Any:
        with db.cursor() as cur:
            cur.execute(f"SELECT a FROM `{MYSQL_VICTIM}` ORDER BY a")
            return [r[0] for r in cur.fetchall()]

    try:
        yield rows
    finally:
        with db.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{MYSQL_VICTIM}`")
        db.close()


@pytest.mark.parametrize(
    "payload",
    [
        f"SELECT 1 AS a) AS q; DROP TABLE `{MYSQL_VICTIM}`; SELECT * FROM (SELECT 1 AS a",
        f"SELECT 1 AS a /*! ) AS q; DELETE FROM `{MYSQL_VICTIM}`; SELECT * FROM (SELECT 1 */",
        f"SELECT a FROM `{MYSQL_VICTIM}` FOR UPDATE",
    ],
    ids=["script", "executable-comment", "for-update"],
)
def test_mysql_attack_is_refused_and_changes_nothing(mysql_victim: Any, payload: str) -> None:
    with pytest.raises(ConnectorError, match="^The query "):
        check_select_query(payload, "mysql")
    unchecked = mysql_unchecked(payload)
    report = unchecked.test()
    assert not report.ok and report.error
    with pytest.raises(ConnectorError):
        fetch_all(unchecked)
    assert mysql_victim() == [1, 2, 3]


def test_mysql_session_stays_read_only_after_commit(mysql_victim: Any) -> None:
    pymysql = pytest.importorskip("pymysql")
    with mysql_unchecked("SELECT 1 AS a").connect() as db, db.cursor() as cur:
        cur.execute("COMMIT")
        with pytest.raises(pymysql.err.MySQLError, match="READ ONLY"):
            cur.execute(f"DELETE FROM `{MYSQL_VICTIM}`")
    assert mysql_victim() == [1, 2, 3]


def test_mysql_statement_timeout_and_root_warning(mysql_victim: Any) -> None:
    quick = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}), read_timeout=1.0)
    start = time.monotonic()
    report = mysql_unchecked("SELECT SLEEP(20) AS a", quick).test()
    assert not report.ok and "interrupted" in report.error
    assert time.monotonic() - start < 8
    report = mysql_unchecked(f"SELECT a FROM `{MYSQL_VICTIM}`").test()
    assert report.ok, report.error
    assert any("root" in w and "ALL PRIVILEGES" in w for w in report.warnings)


# ================================================================ SQLite


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "crm.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE victim (a INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO victim VALUES (1), (2), (3)")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sqlite_unchecked(path: Path, query: str, **policy: Any) -> SqliteConnector:
    return SqliteConnector(
        SqliteConfig(path=str(path), query=query, key=["a"]),
        {},
        GuardPolicy(file_roots=(str(path.parent),), **policy),
    )


@pytest.mark.parametrize(
    "payload",
    [
        "SELECT 1 AS a) AS q; DROP TABLE victim; SELECT * FROM (SELECT 1 AS a",
        "SELECT 1 AS a; DROP TABLE victim",
        "ATTACH DATABASE 'evil.db' AS evil",
        "PRAGMA writable_schema = 1",
        "SELECT 1 AS a) AS q; PRAGMA query_only = 0; SELECT * FROM (SELECT 1 AS a",
        "VACUUM INTO 'copy.db'",
        "WITH gone AS (DELETE FROM victim RETURNING a) SELECT a FROM gone",
        "SELECT load_extension('/tmp/evil') AS a",
    ],
)
def test_sqlite_attack_is_refused_and_file_unchanged(sqlite_file: Path, payload: str) -> None:
    before = digest(sqlite_file)
    with pytest.raises(ConnectorError, match="^The query "):
        check_select_query(payload, "sqlite")
    unchecked = sqlite_unchecked(sqlite_file, payload)
    report = unchecked.test()
    assert not report.ok and report.error
    with pytest.raises(ConnectorError):
        fetch_all(unchecked)
    assert digest(sqlite_file) == before
    assert sorted(p.name for p in sqlite_file.parent.iterdir()) == ["crm.sqlite3"]


def test_sqlite_session_is_query_only(sqlite_file: Path) -> None:
    with sqlite_unchecked(sqlite_file, "SELECT a FROM victim").connect() as db:
        db.set_authorizer(None)  # even without the authorizer, the connection only reads
        assert db.execute("PRAGMA query_only").fetchone() == (1,)
        with pytest.raises(sqlite3.OperationalError):
            db.execute("DELETE FROM victim")


def test_sqlite_long_query_is_interrupted(sqlite_file: Path) -> None:
    endless = (
        "WITH RECURSIVE r(a) AS (SELECT 1 UNION ALL SELECT a + 1 FROM r WHERE a < 100000000) "
        "SELECT count(*) AS a FROM r"
    )
    start = time.monotonic()
    report = sqlite_unchecked(sqlite_file, endless, read_timeout=0.5).test()
    assert not report.ok and "took longer than" in report.error
    assert time.monotonic() - start < 5
