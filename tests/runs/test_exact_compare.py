"""Validation runs compare values exactly; tolerance is stated per mapping row.

Identical tables (numeric(20,10), float8, timestamptz(6), Unicode text, NULLs) report zero
differences whether they live in PostgreSQL, SQLite or CSV files; a 1e-7 change is reported
with tolerance 0 and not with an absolute tolerance of 1e-6.
"""

import csv
import io
import sqlite3
from collections.abc import Iterator

import pytest
from django.urls import reverse

from planner.api.tokens import create_token
from planner.models import ValidationRun
from planner.runs import service as validation
from tests.conftest import client_for
from tests.factories import (
    ConnectionFactory,
    FieldMappingFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)

ROWS = [
    # id, amount numeric(20,10), ratio float8, at timestamptz(6), label text
    (1, "0.1234567000", 1e-7, "2024-03-01 10:15:30.123456+00", "Zoë — naïve café ✓"),
    (2, "383.7500000000", 0.1, "2024-03-01 12:00:00.000001+02", "東京"),
    (3, None, None, None, None),
    (4, "-99999999.9999999999", 1.0000000000000002, "1999-12-31 23:59:59.999999-05", ""),
]
FIELDS = [
    ("amount", "decimal"),
    ("ratio", "decimal"),
    ("at", "datetime"),
    ("label", "string"),
]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def published(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(validation, "dispatch", lambda run: sent.append(run.pk))
    return sent


def run_now(connection) -> ValidationRun:
    run = validation.start_validation_run(connection, connection.project.owner)
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    return run


def connect(source_endpoint: dict, target_endpoint: dict, tolerances: dict | None = None):
    project = ProjectFactory()
    source = SystemFactory(project=project, name="Ledger")
    target = SystemFactory(project=project, name="Warehouse")
    SystemEndpointFactory(system=source, **source_endpoint)
    SystemEndpointFactory(system=target, **target_endpoint)
    connection = ConnectionFactory(project=project, source=source, target=target)
    mapping = [("id", "integer"), *FIELDS]
    for i, (name, kind) in enumerate(mapping):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=name,
            target_field=name,
            source_type=kind,
            target_type=kind,
            rule="identity",
            null_rule="skip",
            tolerance=(tolerances or {}).get(name, ""),
        )
    return connection


def reconciliation(run: ValidationRun):
    return run.stages.get(name="reconciliation")


def assert_no_difference(run: ValidationRun) -> None:
    rec = reconciliation(run)
    assert rec.status == "passed", (rec.error, rec.examples)
    assert rec.figures["mismatch_counts"] == {"amount": 0, "ratio": 0, "at": 0, "label": 0}
    assert rec.figures["equal_count"] == len(ROWS)
    assert rec.figures["fields"] == ["amount", "ratio", "at", "label"]


# ------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg(settings) -> Iterator[dict]:
    import psycopg

    from tests.connectors import PG_DSN, pg_database

    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    with pg_database("aethon_exact_compare_test") as name:
        with psycopg.connect(f"{PG_DSN} dbname={name}", autocommit=True) as conn:
            for table in ("src", "dst"):
                conn.execute(
                    f"CREATE TABLE {table} (id int PRIMARY KEY, amount numeric(20,10),"
                    " ratio float8, at timestamptz(6), label text)"
                )
                with conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)", ROWS)

        def endpoint(table: str) -> dict:
            config = {"host": "127.0.0.1", "port": 5432, "database": name, "user": "postgres"}
            return {"kind": "postgres", "config": config, "dataset": table, "upload": ""}

        yield {"endpoint": endpoint, "dsn": f"{PG_DSN} dbname={name}"}


def test_identical_postgres_tables_report_no_difference(db, published, pg):
    run = run_now(connect(pg["endpoint"]("src"), pg["endpoint"]("dst")))
    assert_no_difference(run)


def test_postgres_a_1e7_change_is_reported_without_tolerance(db, published, pg):
    import psycopg

    with psycopg.connect(pg["dsn"], autocommit=True) as conn:
        conn.execute("UPDATE dst SET amount = amount + 0.0000001 WHERE id = 1")
    run = run_now(connect(pg["endpoint"]("src"), pg["endpoint"]("dst")))
    rec = reconciliation(run)
    assert rec.status == "failed"
    assert rec.figures["mismatch_counts"]["amount"] == 1
    # The original values, not re-formatted ones.
    assert rec.examples == [
        {
            "key": {"id": 1},
            "field": "amount",
            "source": "0.1234567000",
            "target": "0.1234568000",
        }
    ]


def test_postgres_a_1e7_change_is_within_an_absolute_tolerance_of_1e6(db, published, pg):
    import psycopg

    with psycopg.connect(pg["dsn"], autocommit=True) as conn:
        conn.execute("UPDATE dst SET amount = amount + 0.0000001 WHERE id = 1")
    run = run_now(connect(pg["endpoint"]("src"), pg["endpoint"]("dst"), {"amount": "0.000001"}))
    assert_no_difference(run)
    # The run page and the API say which tolerance made the values agree.
    project = run.project
    page = client_for(project.owner).get(reverse("planner:run_show", args=[project.pk, run.pk]))
    assert "amount</span> ± 0.000001 (1 value within it)" in page.content.decode()
    _, raw = create_token(project.owner, "ci")
    results = client_for(project.owner).get(
        f"/api/projects/{project.pk}/runs/{run.pk}/results",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    figures = next(s for s in results.json()["stages"] if s["name"] == "reconciliation")["figures"]
    assert figures["tolerances"] == {"amount": "± 0.000001"}
    assert figures["within_tolerance"] == {"amount": 1}


# ------------------------------------------------------------------------- SQLite


def sqlite_bytes(tmp_path, name: str, rows=ROWS) -> bytes:
    path = tmp_path / f"{name}.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE t (id integer PRIMARY KEY, amount numeric(20,10), ratio real,"
        " at text, label text)"
    )
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return path.read_bytes()


def sqlite_endpoint(content: bytes) -> dict:
    from django.core.files.base import ContentFile

    return {
        "kind": "sqlite",
        "config": {},
        "dataset": "t",
        "upload": ContentFile(content, name="data.sqlite"),
        "upload_name": "data.sqlite",
    }


def test_identical_sqlite_tables_report_no_difference(db, published, tmp_path):
    data = sqlite_bytes(tmp_path, "a")
    run = run_now(connect(sqlite_endpoint(data), sqlite_endpoint(data)))
    assert_no_difference(run)


# ------------------------------------------------------------------------- CSV


def csv_text(rows=ROWS) -> str:
    lines = ["id,amount,ratio,at,label"]
    for row in rows:
        lines.append(
            ",".join("" if v is None else f'"{v}"' if isinstance(v, str) else repr(v) for v in row)
        )
    return "\n".join(lines) + "\n"


def test_identical_csv_files_report_no_difference(db, published):
    run = run_now(connect({"csv": csv_text()}, {"csv": csv_text()}))
    assert_no_difference(run)


def test_csv_a_1e7_change_is_reported_without_tolerance_and_not_within_1e6(db, published):
    changed = [(1, "0.1234568000", *ROWS[0][2:]), *ROWS[1:]]
    run = run_now(connect({"csv": csv_text()}, {"csv": csv_text(changed)}))
    assert reconciliation(run).figures["mismatch_counts"]["amount"] == 1
    run = run_now(connect({"csv": csv_text()}, {"csv": csv_text(changed)}, {"amount": "0.000001"}))
    assert_no_difference(run)


# ------------------------------------------------------------------------- keys


def keyed_connection(source_csv: str, target_csv: str, key: str, infer: bool = True):
    project = ProjectFactory()
    source = SystemFactory(project=project, name="Orders")
    target = SystemFactory(project=project, name="Ledger")
    config = {"infer_types": infer}
    SystemEndpointFactory(system=source, csv=source_csv, key_fields=key, config=config)
    SystemEndpointFactory(system=target, csv=target_csv, key_fields=key, config=config)
    connection = ConnectionFactory(project=project, source=source, target=target)
    names = [n.strip() for n in source_csv.splitlines()[0].split(",")]
    for i, name in enumerate(names):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=name,
            target_field=name,
            source_type="string",
            target_type="string",
            rule="identity",
            null_rule="skip",
        )
    return connection


def test_a_compound_key_works_end_to_end(db, published):
    connection = keyed_connection(
        "org,no,total\nA,1,10\nA,2,20\nB,1,30\nB,3,40\n",
        "org,no,total\nA,1,10\nA,2,21\nB,1,30\nC,9,50\n",
        "org, no",
    )
    run = run_now(connection)
    rec = reconciliation(run)
    assert rec.figures["key"] == ["org", "no"]
    assert rec.figures["fields"] == ["total"]  # the key columns are not "compared fields"
    assert rec.figures["missing_in_target"] == [{"org": "B", "no": 3}]
    assert rec.figures["extra_in_target"] == [{"org": "C", "no": 9}]
    assert rec.examples == [
        {"key": {"org": "A", "no": 2}, "field": "total", "source": "20", "target": "21"}
    ]
    # The page names both parts of every key; the download has a column per key part.
    client = client_for(connection.project.owner)
    page = client.get(reverse("planner:run_show", args=[connection.project.pk, run.pk]))
    html = page.content.decode()
    assert "org=A, no=2" in html and "org=B, no=3" in html and "org=C, no=9" in html
    assert "compared 1 field: total" in html
    rows = list(csv.DictReader(io.StringIO(run.differences_file.read().decode())))
    assert [(r["status"], r["org"], r["no"], r["field"]) for r in rows] == [
        ("missing_in_target", "B", "3", ""),
        ("extra_in_target", "C", "9", ""),
        ("mismatch", "A", "2", "total"),
    ]


def test_numeric_keys_sort_numerically_in_lists_and_downloads(db, published):
    source = "id,name\n" + "".join(f"{i},n{i}\n" for i in (1, 2, 9, 10, 11, 100))
    target = "id,name\n" + "".join(f"{i},m{i}\n" for i in (1, 2, 9, 10, 11, 100))
    # Read as text, as a file without type inference gives them.
    run = run_now(keyed_connection(source, "id,name\n1,n1\n", "id", infer=False))
    rec = reconciliation(run)
    assert [k["id"] for k in rec.figures["missing_in_target"]] == ["2", "9", "10", "11", "100"]
    run = run_now(keyed_connection(source, target, "id", infer=False))
    assert [e["key"]["id"] for e in reconciliation(run).examples] == [
        "1",
        "2",
        "9",
        "10",
        "11",
        "100",
    ]
    rows = list(csv.DictReader(io.StringIO(run.differences_file.read().decode())))
    assert [r["id"] for r in rows] == ["1", "2", "9", "10", "11", "100"]
