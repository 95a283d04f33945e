"""Validation runs compare values exactly; tolerance is stated per mapping row.

Identical tables (numeric(20,10), float8, timestamptz(6), Unicode text, NULLs) report zero
differences whether they live in PostgreSQL, SQLite or CSV files; a 1e-7 change is reported
with tolerance 0 and not with an absolute tolerance of 1e-6.
"""

import csv
import io
import os
import sqlite3
from collections.abc import Iterator

import pytest
from django.test import override_settings
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
from tests.runs.conftest import map_same_names

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
    map_same_names(
        connection,
        [("id", "integer"), *FIELDS],
        tolerance=lambda name: (tolerances or {}).get(name, ""),
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
    with pg_database(f"aethon_exact_compare_test_{os.getpid()}") as name:
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


def test_postgres_floats_are_read_whole_whatever_the_database_prints(db, published, pg):
    """A database set to print floats short (extra_float_digits = 0) must not make
    1.0000000000000002 read as 1: every path reads values as text."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg["dsn"], autocommit=True) as conn:
        name = conn.info.dbname
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET extra_float_digits = 0").format(sql.Identifier(name))
        )
        conn.execute("UPDATE dst SET ratio = 1 WHERE id = 4")
    for join in (True, False):
        with override_settings(AETHON_RUN_JOIN=join):
            run = run_now(connect(pg["endpoint"]("src"), pg["endpoint"]("dst")))
        rec = reconciliation(run)
        assert rec.figures["mismatch_counts"]["ratio"] == 1, (join, rec.figures)
        assert rec.examples[0]["source"] == "1.0000000000000002"


def test_an_empty_table_is_compared_not_refused_for_a_missing_key(db, published, pg):
    """A target nothing has reached yet (before a backfill) is every source row missing, and
    an empty source is every target row extra, on every path a run takes."""
    import psycopg

    with psycopg.connect(pg["dsn"], autocommit=True) as conn:
        conn.execute("CREATE TABLE empty (LIKE dst INCLUDING ALL)")
    for join in (True, False):
        with override_settings(AETHON_RUN_JOIN=join):
            run = run_now(connect(pg["endpoint"]("src"), pg["endpoint"]("empty")))
            rec = reconciliation(run)
            assert rec.figures["missing_in_target_count"] == len(ROWS), (join, rec.error)
            assert rec.figures["target_count"] == 0
            run = run_now(connect(pg["endpoint"]("empty"), pg["endpoint"]("dst")))
            rec = reconciliation(run)
            assert rec.figures["extra_in_target_count"] == len(ROWS), (join, rec.error)
    # A file on one side is compared with whole tables: an empty table keeps its columns too.
    header = "id,amount,ratio,at,label\n"
    run = run_now(connect({"csv": header + csv_text().partition("\n")[2]}, pg["endpoint"]("empty")))
    assert reconciliation(run).figures["missing_in_target_count"] == len(ROWS)


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


# ------------------------------------------------------------------------- text timestamps

# The same instants as text, spelled as CSV exports and SQLite write them: a fraction of a
# second, an offset, Z, a T or a space, and one without either.
STAMPS = [
    (1, "2026-01-05 10:00:00.123456", "2026-01-05 10:00:00.123456+00"),
    (2, "2026-01-05T10:00:00+02:00", "2026-01-05 08:00:00+00"),
    (3, "2026-01-05T10:00:00.000001Z", "2026-01-05 10:00:00.000001+00"),
    (4, "2026-01-05 23:30:00.5-0530", "2026-01-06 05:00:00.5+00"),
    (5, "2026-01-05 10:00:00", "2026-01-05 10:00:00+00"),
    (6, None, None),
]


@pytest.fixture
def stamped_pg(pg):
    import psycopg

    with psycopg.connect(pg["dsn"], autocommit=True) as conn:
        conn.execute("CREATE TABLE stamps (id int PRIMARY KEY, at timestamptz(6))")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO stamps VALUES (%s, %s)", [(i, real) for i, _, real in STAMPS]
            )
    return pg["endpoint"]("stamps")


def stamp_connection(source_endpoint: dict, target_endpoint: dict, rule: str):
    project = ProjectFactory()
    source = SystemFactory(project=project, name="Export")
    target = SystemFactory(project=project, name="Warehouse")
    SystemEndpointFactory(system=source, **source_endpoint)
    SystemEndpointFactory(system=target, **target_endpoint)
    connection = ConnectionFactory(project=project, source=source, target=target)
    map_same_names(connection, [("id", "integer"), ("at", "datetime", rule)])
    return connection


def stamps_csv(rows) -> str:
    return "id,at\n" + "".join(f"{i},{'' if text is None else text}\n" for i, text, *_ in rows)


@pytest.mark.parametrize("rule", ["identity", "trim", "datetime"])
def test_csv_text_timestamps_match_a_timestamptz_column_exactly(db, published, stamped_pg, rule):
    run = run_now(stamp_connection({"csv": stamps_csv(STAMPS)}, stamped_pg, rule))
    mapping = run.stages.get(name="mapping")
    assert mapping.status == "passed", mapping.examples
    rec = reconciliation(run)
    assert rec.status == "passed", (rec.error, rec.examples)
    assert rec.figures["mismatch_counts"] == {"at": 0}
    assert rec.figures["equal_count"] == len(STAMPS)
    assert rec.figures["compared_as_text"] == []


def test_sqlite_text_timestamps_match_a_timestamptz_column_exactly(
    db, published, stamped_pg, tmp_path
):
    path = tmp_path / "stamps.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, at text)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, text) for i, text, _ in STAMPS])
    conn.commit()
    conn.close()
    for rule in ("identity", "trim"):
        run = run_now(stamp_connection(sqlite_endpoint(path.read_bytes()), stamped_pg, rule))
        assert run.stages.get(name="mapping").status == "passed"
        assert reconciliation(run).figures["mismatch_counts"] == {"at": 0}, rule


def test_a_microsecond_apart_is_a_difference(db, published, stamped_pg):
    shifted = [(1, "2026-01-05 10:00:00.123457", None), *STAMPS[1:]]
    run = run_now(stamp_connection({"csv": stamps_csv(shifted)}, stamped_pg, "trim"))
    rec = reconciliation(run)
    assert rec.figures["mismatch_counts"] == {"at": 1}
    assert rec.examples[0]["key"] == {"id": 1}


def test_a_malformed_timestamp_is_still_reported_with_its_key(db, published, stamped_pg):
    broken = [
        (1, "2026-01-05 10:00:00.123456", None),
        (2, "2026-01-05T25:00:00+02:00", None),  # no hour 25
        (3, "2026-01-05T10:00:00.Z", None),  # a point without digits
        *STAMPS[3:],
    ]
    run = run_now(stamp_connection({"csv": stamps_csv(broken)}, stamped_pg, "trim"))
    mapping = run.stages.get(name="mapping")
    assert mapping.status == "failed"
    assert [(e["key"], e["value"], e["reason"]) for e in mapping.examples] == [
        (2, "2026-01-05T25:00:00+02:00", "type_mismatch"),
        (3, "2026-01-05T10:00:00.Z", "type_mismatch"),
    ]
    # Both also differ from the target: a rejected value is never silently equal.
    assert reconciliation(run).figures["mismatch_counts"] == {"at": 2}


# ------------------------------------------------------------------------- full precision

PRECISE = [
    # id, text as exported, numeric(38,10) in the target
    (1, "0.1234567", "0.1234567000"),
    (2, "1e-7", "0.0000001000"),
    (3, "383.75", "383.7500000000"),
    (5, "99999999999999999.9999999999", "99999999999999999.9999999999"),
    (6, "-0.0000000001", "-0.0000000001"),
]


@pytest.fixture
def precise_pg(pg):
    import psycopg

    with psycopg.connect(pg["dsn"], autocommit=True) as conn:
        conn.execute("CREATE TABLE precise (id int PRIMARY KEY, amount numeric(38,10))")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO precise VALUES (%s, %s)",
                [(i, stored) for i, _, stored in PRECISE if stored],
            )
    return pg["endpoint"]("precise")


def precise_connection(target_endpoint: dict, rule: str, rows=PRECISE):
    project = ProjectFactory()
    source = SystemFactory(project=project, name="Export")
    target = SystemFactory(project=project, name="Ledger")
    csv_rows = "".join(f"{i},{text}\n" for i, text, stored in rows if stored)
    SystemEndpointFactory(
        system=source, csv="id,amount\n" + csv_rows, config={"infer_types": False}
    )
    SystemEndpointFactory(system=target, **target_endpoint)
    connection = ConnectionFactory(project=project, source=source, target=target)
    for i, (name, kind, row_rule) in enumerate(
        [("id", "integer", "identity"), ("amount", "decimal", rule)]
    ):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=name,
            target_field=name,
            source_type="string",
            target_type=kind,
            rule=row_rule,
            null_rule="skip",
        )
    return connection


@pytest.mark.parametrize("rule", ["identity", "trim", "trim | number", "number"])
def test_decimals_keep_every_place_through_any_rule(db, published, precise_pg, rule):
    run = run_now(precise_connection(precise_pg, rule))
    assert run.stages.get(name="mapping").status == "passed"
    rec = reconciliation(run)
    assert rec.status == "passed", (rec.error, rec.examples)
    assert rec.figures["mismatch_counts"] == {"amount": 0}


def test_a_tenth_place_change_is_shown_with_the_values_as_they_are(db, published, precise_pg):
    import psycopg

    pg_dsn = precise_pg["config"]
    with psycopg.connect(
        f"host=127.0.0.1 dbname={pg_dsn['database']} user=postgres", autocommit=True
    ) as conn:
        conn.execute("UPDATE precise SET amount = 383.7500000001 WHERE id = 3")
    run = run_now(precise_connection(precise_pg, "trim | number"))
    rec = reconciliation(run)
    assert rec.figures["mismatch_counts"] == {"amount": 1}
    # The transformed value as it is (not 383.750000 nor 383.75000000000000000000), the
    # target's as stored.
    assert rec.examples == [
        {"key": {"id": "3"}, "field": "amount", "source": "383.75", "target": "383.7500000001"}
    ]


def test_numbers_beyond_the_language_range_are_reported_not_rounded(db, published, precise_pg):
    rows = [(4, "1234567890123456789.5", "x"), *PRECISE[:1]]
    run = run_now(precise_connection(precise_pg, "number", rows))
    mapping = run.stages.get(name="mapping")
    assert [(e["key"], e["reason"]) for e in mapping.examples] == [("4", "type_mismatch")]
