"""Helpers shared by the run tests: a throwaway PostgreSQL database per module and mapping
rows written as the engine reads them."""

import sqlite3
import uuid
from types import SimpleNamespace

import polars as pl
import psycopg
import pytest
from django.core.files.base import ContentFile
from psycopg import sql

from planner.connectors.guard import GuardPolicy
from planner.connectors.registry import open_connector
from planner.models import SystemEndpoint
from planner.runs.stages import Side, first_rows

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "sslmode": "disable"}
POLICY = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}))


def map_same_names(connection, columns, **more) -> None:
    """Mapping rows of ``connection`` from each source column to the target column of the same
    name: ``columns`` holds (name, type) or (name, type, rule); the rule is identity unless
    given, nulls are skipped, ``more`` adds fields (e.g. a tolerance per name through a call)."""
    from tests.factories import FieldMappingFactory

    for i, (name, kind, *rule) in enumerate(columns):
        FieldMappingFactory(
            project=connection.project,
            connection=connection,
            position=i,
            source_field=name,
            target_field=name,
            source_type=kind,
            target_type=kind,
            rule=rule[0] if rule else "identity",
            null_rule="skip",
            **{k: (v(name) if callable(v) else v) for k, v in more.items()},
        )


def row(source: str, target: str, rule: str = "identity", **more) -> SimpleNamespace:
    """A mapping row (source -> target, text to text unless `more` says otherwise)."""
    base = dict(
        source_field=source,
        target_field=target,
        source_type="string",
        target_type="string",
        max_length=None,
        required=False,
        null_rule="skip",
        null_default="",
        rule=rule,
        tolerance="",
    )
    return SimpleNamespace(**(base | more))


@pytest.fixture(scope="module")
def pg_db():
    """A PostgreSQL database of its own for a test module's tables, dropped after it."""
    name = f"aethon_scratch_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(**PG, dbname="postgres", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is unreachable: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def pg_scratch(settings):
    """A database of its own on the test PostgreSQL server, for one test: (dsn, name)."""
    from django.db import connection as db

    if db.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://…)")
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    s = db.settings_dict
    dsn = dict(host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"])
    name = f"aethon_scratch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**dsn, dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield dsn, name
    finally:
        with psycopg.connect(**dsn, dbname="postgres", autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# Tables per dialect, read by the runs' connectors.


def sqlite_side(role, table, frame: pl.DataFrame, key) -> Side:
    conn = sqlite3.connect(":memory:")

    def sql_type(t: pl.DataType) -> str:
        return "INTEGER" if t.is_integer() else "REAL" if t.is_float() else "TEXT"

    cols = ", ".join(f'"{c}" {sql_type(t)}' for c, t in frame.schema.items())
    conn.execute(f'CREATE TABLE "{table}" ({cols})')
    marks = ", ".join("?" * frame.width)
    conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', frame.rows())
    conn.commit()
    data = conn.serialize()
    conn.close()
    connector = open_connector("sqlite", {"content": data, "table": table}, {}, POLICY)
    return make_side(role, connector, key)


def pg_side(dbname, role, table, frame: pl.DataFrame, key) -> Side:
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(
            sql.Identifier(c), sql.SQL("bigint" if t.is_integer() else 'text COLLATE "en-x-icu"')
        )
        for c, t in frame.schema.items()
    )
    with psycopg.connect(**PG, dbname=dbname, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), cols))
        with conn.cursor() as cur:
            marks = sql.SQL(", ").join(sql.Placeholder() * frame.width)
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES ({})").format(sql.Identifier(table), marks),
                frame.rows(),
            )
    config = {**PG, "database": dbname, "table": table}
    return make_side(role, open_connector("postgres", config, {}, POLICY), key)


def make_side(role, connector, key) -> Side:
    return Side(
        role,
        SimpleNamespace(name=role),  # type: ignore[arg-type]
        SimpleNamespace(key_list=list(key)),  # type: ignore[arg-type]
        connector,
        report={"ok": True},
        head=first_rows(connector),
    )


def sqlite_upload(table: str, frame: pl.DataFrame) -> dict:
    side = sqlite_side("source", table, frame, [])
    return {
        "kind": SystemEndpoint.Kind.SQLITE,
        "dataset": table,
        "upload": ContentFile(side.connector.config.content, name=f"{table}.db"),
        "upload_name": f"{table}.db",
    }


def pg_endpoint(dsn, name: str, table: str) -> dict:
    """A system endpoint's fields for ``table`` of database ``name`` on the server ``dsn``
    describes (host, port, user)."""
    return {
        "kind": SystemEndpoint.Kind.POSTGRES,
        "config": {
            "host": dsn["host"],
            "port": int(dsn["port"]),
            "database": name,
            "user": dsn["user"],
            "sslmode": "disable",
        },
        "dataset": table,
        "upload": "",
        "upload_name": "",
    }
