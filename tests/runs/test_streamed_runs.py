"""Runs on SQL systems read both sides in key order, chunk by chunk, and say so.

The same data through files (held whole) and through SQL systems (streamed in small chunks)
must give the same figures and the same differences file.
"""

import csv
import io
import sqlite3

import psycopg
import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from psycopg import sql

from planner.api.tokens import create_token
from planner.models import SystemEndpoint, ValidationRun
from planner.runs import service as validation
from tests.conftest import client_for
from tests.factories import (
    ConnectionFactory,
    FieldMappingFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)

CHUNK = 7

SOURCE = [(i, f"  User{i}@Example.com ", ["active", "inactive"][i % 2]) for i in range(1, 60)]
SOURCE += [(None, "nokey@example.com", "active"), (12, "dup12@example.com", "active")]
TARGET = [(i, f"user{i}@example.com", 1 - i % 2) for i in range(1, 60) if i % 10 != 3]
TARGET = [(i, e if i % 9 else e.upper(), a) for i, e, a in TARGET]  # changed emails
TARGET += [(100 + i, f"extra{i}@example.com", 1) for i in range(4)]
TARGET += [(None, "n@example.com", 0), (40, "dup40@example.com", 0)]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.AETHON_RUN_CHUNK_ROWS = CHUNK
    settings.AETHON_RUN_FETCH_ROWS = 0  # every row read (push-down: tests/runs/test_pushdown.py)
    settings.AETHON_RUN_JOIN = False  # every row read (the join: tests/runs/test_joined.py)


@pytest.fixture
def published(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(validation, "dispatch", lambda run: sent.append(run.pk))
    return sent


def sqlite_bytes(table: str, columns: str, rows) -> bytes:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE {table} ({columns})")
    marks = ", ".join("?" * len(rows[0]))
    conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    conn.commit()
    data = conn.serialize()
    conn.close()
    return data


def csv_text(header: str, rows) -> str:
    out = io.StringIO()
    out.write(header + "\n")
    for row in rows:
        out.write(",".join("" if v is None else str(v) for v in row) + "\n")
    return out.getvalue()


def mapped_connection(project, source_ep: dict, target_ep: dict, key_rule: str = "identity"):
    source = SystemFactory(project=project, name="CRM")
    target = SystemFactory(project=project, name="Billing")
    SystemEndpointFactory(system=source, **source_ep)
    SystemEndpointFactory(system=target, **target_ep)
    connection = ConnectionFactory(project=project, source=source, target=target)
    rows = [
        ("id", "id", "integer", "integer", key_rule),
        ("status", "active", "string", "integer", "map(active=1, inactive=0)"),
        ("email", "email", "string", "string", "trim | lower"),
    ]
    for i, (src, dst, st, tt, rule) in enumerate(rows):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=src,
            target_field=dst,
            source_type=st,
            target_type=tt,
            rule=rule,
            null_rule="skip",
        )
    return connection


def sqlite_connection(project=None, key_rule="identity"):
    project = project or ProjectFactory()
    return mapped_connection(
        project,
        {
            "kind": SystemEndpoint.Kind.SQLITE,
            "dataset": "crm",
            "upload": ContentFile(
                sqlite_bytes("crm", "id INTEGER, email TEXT, status TEXT", SOURCE), name="crm.db"
            ),
            "upload_name": "crm.db",
        },
        {
            "kind": SystemEndpoint.Kind.SQLITE,
            "dataset": "billing",
            "upload": ContentFile(
                sqlite_bytes("billing", "id INTEGER, email TEXT, active INTEGER", TARGET),
                name="billing.db",
            ),
            "upload_name": "billing.db",
        },
        key_rule,
    )


def file_connection():
    return mapped_connection(
        ProjectFactory(),
        {"csv": csv_text("id,email,status", SOURCE)},
        {"csv": csv_text("id,email,active", TARGET)},
    )


def run_now(connection, published, **kwargs) -> ValidationRun:
    run = validation.start_validation_run(connection, connection.project.owner, **kwargs)
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    return run


def figures(run, name):
    return run.stages.get(name=name).figures


def differences(run) -> list[dict]:
    return list(csv.DictReader(io.StringIO(run.differences_file.read().decode())))


@pytest.fixture
def csv_as_bytes(monkeypatch):
    """CSV uploads handed over as bytes, so parsed whole (a file on disk is streamed)."""
    from planner.runs import endpoints

    monkeypatch.setattr(endpoints, "upload_file", lambda endpoint: None)


def test_sql_systems_are_read_in_key_order_chunks_with_the_in_memory_result(
    db, published, csv_as_bytes
):
    streamed = run_now(sqlite_connection(), published)
    whole = run_now(file_connection(), published)
    rec, ref = figures(streamed, "reconciliation"), figures(whole, "reconciliation")
    reading = rec.pop("reading")
    assert reading["mode"] == "streamed" and reading["chunk_rows"] == CHUNK
    assert reading["key_ranges"] > 10  # 60-odd rows per side in chunks of 7
    assert reading["peak_rows_held"] <= 4 * CHUNK
    assert ref.pop("reading") == {"mode": "whole", "reason": ref_reason()}
    assert rec == ref
    assert rec["null_keys_source"] == 1 and rec["duplicate_rows_source"] == 1
    assert rec["null_keys_target"] == 1 and rec["duplicate_rows_target"] == 1
    assert (rec["missing_in_target_count"], rec["extra_in_target_count"]) == (6, 4)
    assert rec["mismatch_counts"]["email"] > 0
    # The mapping stage came from the same pass, with the same figures.
    assert figures(streamed, "mapping") == figures(whole, "mapping")
    assert differences(streamed) == differences(whole)
    assert streamed.records_done == len(SOURCE) + len(TARGET)


def ref_reason() -> str:
    return (
        "Source (CRM) cannot be read in key order: the CSV file was given as content, not as a"
        " file on disk"
    )


def test_a_key_computed_by_a_rule_is_compared_whole_and_the_run_says_why(db, published):
    run = run_now(sqlite_connection(key_rule="identity | default(0)"), published)
    reading = figures(run, "reconciliation")["reading"]
    assert reading["mode"] == "whole"
    assert "computed by the rule 'identity | default(0)'" in reading["reason"]
    # default(0) gives the source's null key the key 0, which the target lacks.
    assert figures(run, "reconciliation")["missing_in_target_count"] == 7


def test_stop_after_n_differences_through_the_api(db, published):
    connection = sqlite_connection()
    _token, raw = create_token(connection.project.owner, "limits")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    url = f"/api/projects/{connection.project_id}/connections/{connection.pk}/runs"
    client = Client()
    bad = client.post(url + "?max_differences=0", **headers)
    assert bad.status_code == 400
    assert "Stop after N differences" in bad.json()["detail"]
    assert not ValidationRun.objects.exists()
    ok = client.post(url + "?max_differences=3", **headers)
    assert ok.status_code == 202, ok.content
    assert ok.json()["max_differences"] == 3
    validation.execute_run(ok.json()["id"], heartbeat=False)
    run = ValidationRun.objects.get()
    rec = figures(run, "reconciliation")
    assert rec["reading"]["stopped_early"] is True
    found = rec["missing_in_target_count"] + rec["extra_in_target_count"]
    found += rec["mismatched_count"]
    assert 3 <= found < 20  # stopped well before the ~30 differences of the whole tables


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_tables(pg_scratch):
    return pg_scratch


def pg_endpoint(dsn, dbname, table, key) -> dict:
    return {
        "kind": SystemEndpoint.Kind.POSTGRES,
        "config": {
            "host": dsn["host"],
            "port": int(dsn["port"]),
            "database": dbname,
            "user": dsn["user"],
            "sslmode": "disable",
        },
        "dataset": table,
        "key_fields": key,
        "upload": "",
        "upload_name": "",
    }


def test_postgres_keys_of_mixed_case_stream_in_code_point_order(db, published, pg_tables):
    # The column's own collation sorts a < B < b; the merge needs 'B' < 'a' (polars' order).
    dsn, name = pg_tables
    codes = ["a", "B", "b", "A", "é", "Z", "z", "aa", "AB"]
    with psycopg.connect(**dsn, dbname=name, autocommit=True) as conn:
        for table, rows in (
            ("src", [(c, f"v-{c}") for c in codes] + [(None, "nul")]),
            (
                "dst",
                [(c, f"v-{c}" if c != "b" else "changed") for c in codes if c != "Z"]
                + [("Q", "x")],
            ),
        ):
            conn.execute(
                sql.SQL('CREATE TABLE {} (code text COLLATE "en-x-icu", val text)').format(
                    sql.Identifier(table)
                )
            )
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(sql.Identifier(table)), rows
                )
    project = ProjectFactory()
    source = SystemFactory(project=project, name="Old")
    target = SystemFactory(project=project, name="New")
    SystemEndpointFactory(system=source, **pg_endpoint(dsn, name, "src", "code"))
    SystemEndpointFactory(system=target, **pg_endpoint(dsn, name, "dst", "code"))
    connection = ConnectionFactory(project=project, source=source, target=target)
    for i, field in enumerate(("code", "val")):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=field,
            target_field=field,
            rule="identity",
            null_rule="skip",
        )
    run = run_now(connection, published)
    rec = figures(run, "reconciliation")
    assert rec["reading"]["mode"] == "streamed", rec["reading"]
    assert rec["missing_in_target"] == [{"code": "Z"}]
    assert rec["extra_in_target"] == [{"code": "Q"}]
    assert rec["mismatch_counts"] == {"val": 1}
    assert rec["null_keys_source"] == 1
    assert run.stages.get(name="reconciliation").examples[0]["key"] == {"code": "b"}


def test_the_run_page_says_how_the_data_was_read(db, published, csv_as_bytes):
    run = run_now(sqlite_connection(), published, max_differences=2)
    page = client_for(run.project.owner).get(
        reverse("planner:run_show", args=[run.project_id, run.pk])
    )
    html = page.content.decode()
    assert f"Read in key order in chunks of {CHUNK} rows" in html
    assert "Stopped after 2 differences" in html
    whole = run_now(file_connection(), published)
    html = client_for(whole.project.owner).get(
        reverse("planner:run_show", args=[whole.project_id, whole.pk])
    )
    assert "Held whole in memory: Source (CRM) cannot be read in key order" in html.content.decode()


def test_postgres_copy_reader_gives_what_the_cursor_reader_gives(db, pg_tables):
    """Table datasets of plain types are read with COPY + polars' CSV parser; a query
    dataset goes through the cursor. Both must give the same frames, value for value."""
    from planner.connectors.guard import GuardPolicy
    from planner.connectors.postgres import PostgresConnector

    dsn, name = pg_tables
    with psycopg.connect(**dsn, dbname=name, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE t (id bigint, s text, v varchar(5), c char(3), b boolean, i int,"
            " h smallint, r real, f float8, n numeric(12,3), d date, ts timestamp,"
            " tz timestamptz)"
        )
        conn.execute(
            "INSERT INTO t VALUES"
            " (1, '', 'a,b', 'x', true, 1, 2, 1.1, 0.1, -12.300, '2024-02-29',"
            "  '2024-01-01 00:00:01.123456', '2024-01-01 12:00:00+02'),"
            " (2, NULL, E'q\"\\nr', NULL, false, NULL, NULL, 'NaN', 'Infinity', NULL, NULL,"
            "  NULL, NULL),"
            " (3, 'plain', 'Z', 'abc', NULL, -5, -1, -0.5, -1e300, 123456789.001,"
            "  '0001-01-01', '1999-12-31 23:59:59', '1970-01-01 00:00:00.5+00'),"
            # Before 1970 and in a zone with seconds: timestamps travel as microseconds.
            " (4, 'old', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
            "  '1969-12-31 23:59:59.999999', '1900-06-01 10:00:00.000001+00:09:21'),"
            " (5, 'far', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
            "  '0001-01-01 00:00:00', '9999-12-31 23:59:59.999999+00')"
        )
    guard = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}))
    base = {"host": dsn["host"], "port": int(dsn["port"]), "database": name}
    base |= {"user": dsn["user"], "sslmode": "disable", "key": "id"}
    by_copy = PostgresConnector.from_config({**base, "table": "t"}, {}, guard)
    by_cursor = PostgresConnector.from_config({**base, "query": "SELECT * FROM t"}, {}, guard)
    for size in (1, 2, 10):
        copied = list(by_copy.fetch_ordered(["id"], size))
        fetched = list(by_cursor.fetch_ordered(["id"], size))
        assert len(copied) == len(fetched)
        for a, b in zip(copied, fetched, strict=True):
            assert a.schema == b.schema
            assert a.equals(b), (a, b)
    assert copied[0].get_column("s").to_list()[0] == ""  # an empty string is not NULL
