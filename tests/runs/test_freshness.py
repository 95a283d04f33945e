"""Propagation lag measured on real systems: exact figures on known lags, late and pending
records, clock skew, NULL change times, compound keys; incremental reads pushed down to SQL.

The same records go through PostgreSQL, SQLite and CSV, and must give the same figures.
"""

import json
import random
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from django.core.files.base import ContentFile

from planner.models import (
    FieldMapping,
    FreshnessSettings,
    FreshnessState,
    MetricKey,
    SliPoint,
    SuccessCriterion,
    SystemEndpoint,
)
from planner.runs import freshness
from tests.factories import (
    ConnectionFactory,
    CriterionFactory,
    FieldMappingFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)
from tests.runs.conftest import pg_endpoint

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
HOUR_AGO = NOW - timedelta(hours=1)
S = timedelta(seconds=1)


def _rows():
    """(id, source email, source changed, target email or None when absent, target synced).

    Target 5 minutes, skew allowance 30 s: records changed before NOW - 330 s are decided.
    """
    return [
        (1, " Ada@X.org", HOUR_AGO, "ada@x.org", HOUR_AGO + 10 * S),  # lag 10 s
        (2, "b@x.org", HOUR_AGO, "b@x.org", HOUR_AGO + 60.5 * S),  # lag 60.5 s
        (3, "c@x.org", HOUR_AGO, "c@x.org", HOUR_AGO + 120 * S),  # lag 120 s
        (4, "d@x.org", HOUR_AGO, "d@x.org", HOUR_AGO + 400 * S),  # reflected, too slow
        (5, "e@x.org", HOUR_AGO, "e@x.org", HOUR_AGO - 20 * S),  # clock 20 s behind: lag 0
        (6, "f@x.org", HOUR_AGO, "f@x.org", HOUR_AGO - 40 * S),  # older than the skew: late
        (7, "g@x.org", NOW - 600 * S, None, None),  # never arrived: late
        (8, "h@x.org", NOW - 600 * S, "old@x.org", NOW - 595 * S),  # still different: late
        (9, "i@x.org", NOW - 120 * S, None, None),  # not there yet, within target: pending
        (10, "j@x.org", NOW - 60 * S, "j@x.org", NOW - 30 * S),  # arrived, decided next time
        (11, "k@x.org", None, "k@x.org", HOUR_AGO),  # no change time: unmeasured
        (12, "l@x.org", HOUR_AGO, "l@x.org", None),  # target time unknown: late
        (13, "m@x.org", HOUR_AGO, "m@x.org", HOUR_AGO + timedelta(seconds=1, microseconds=1)),
    ]


FIRST = {
    "total": 10,  # 1-8, 12, 13
    "good": 5,  # 1, 2, 3, 5, 13
    "late_now": 4,  # 6, 7, 8, 12
    "pending": 1,  # 9
    "unmeasured": 1,  # 11
    # nearest rank over [0, 1.000001, 10, 60.5, 120, 400]
    "lag_p50": 10.0,
    "lag_p95": 400.0,
    "lag_p99": 400.0,
    "lag_max": 400.0,
}
LATE_KEYS = [6, 7, 8, 12]


def _iso(value: datetime | None, offset_hours: int = 0) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


def _connection(project, source_ep: dict, target_ep: dict, key="id"):
    source = SystemFactory(project=project, name="CRM")
    target = SystemFactory(project=project, name="Marketing")
    SystemEndpointFactory(system=source, key_fields=key, **source_ep)
    SystemEndpointFactory(system=target, key_fields=key, **target_ep)
    connection = ConnectionFactory(project=project, source=source, target=target)
    rules = [(k, k, "integer", "identity") for k in key.split(",")]
    rules.append(("email", "email", "string", "trim | lower"))
    for i, (src, dst, kind, rule) in enumerate(rules):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=src.strip(),
            target_field=dst.strip(),
            source_type=kind,
            target_type=kind,
            rule=rule,
            null_rule="skip",
        )
    FreshnessSettings.objects.create(
        project=project,
        connection=connection,
        source_time_field="updated_at",
        target_time_field="synced_at",
        skew_seconds=30,
        overlap_seconds=300,
    )
    return connection


def _criterion(connection, **kwargs):
    """Read back, as the task reads it (no related object cached from the set-up)."""
    made = CriterionFactory(
        project=connection.project,
        metric="new contacts in the marketing tool",
        metric_key=MetricKey.FRESHNESS,
        target=5,
        unit="minutes",
        freshness_connection=connection,
        **{"window_value": None, **kwargs},
    )
    return SuccessCriterion.objects.get(pk=made.pk)


def _sqlite(table, columns, rows) -> ContentFile:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE {table} ({columns})")
    conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    conn.commit()
    data = conn.serialize()
    conn.close()
    return ContentFile(data, name=f"{table}.db")


def _csv(header, rows) -> str:
    return header + "\n" + "".join(",".join(v or "" for v in r) + "\n" for r in rows)


@pytest.fixture
def pg(pg_scratch):
    return pg_scratch


def _pg_load(dsn, name, rows):
    with psycopg.connect(**dsn, dbname=name, autocommit=True) as conn:
        conn.execute("CREATE TABLE crm (id int, email text, updated_at timestamptz)")
        # The target's clock column has no zone: it is read as UTC.
        conn.execute("CREATE TABLE marketing (id int, email text, synced_at timestamp)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO crm VALUES (%s, %s, %s)", [(i, e, s) for i, e, s, _, _ in rows]
            )
            cur.executemany(
                "INSERT INTO marketing VALUES (%s, %s, %s)",
                [
                    (i, te, tt.replace(tzinfo=None) if tt else None)
                    for i, _, _, te, tt in rows
                    if te is not None
                ],
            )


def _pg_connection(pg, rows=None):
    dsn, name = pg
    _pg_load(dsn, name, rows or _rows())
    return _connection(
        ProjectFactory(),
        pg_endpoint(dsn, name, "crm"),
        pg_endpoint(dsn, name, "marketing"),
    )


def _sqlite_connection():
    rows = _rows()
    return _connection(
        ProjectFactory(),
        {
            "kind": SystemEndpoint.Kind.SQLITE,
            "dataset": "crm",
            "upload": _sqlite(
                "crm",
                "id INTEGER, email TEXT, updated_at TEXT",
                [(i, e, _iso(s, 2)) for i, e, s, _, _ in rows],
            ),
            "upload_name": "crm.db",
        },
        {
            "kind": SystemEndpoint.Kind.SQLITE,
            "dataset": "marketing",
            "upload": _sqlite(
                "marketing",
                "id INTEGER, email TEXT, synced_at TEXT",
                [(i, te, _iso(tt)) for i, _, _, te, tt in rows if te is not None],
            ),
            "upload_name": "marketing.db",
        },
    )


def _csv_connection():
    rows = _rows()
    # Text times with offsets on one side, 'Z' on the other: both are read as instants.
    source = _csv(
        "id,email,updated_at", [(str(i), e.strip(), _iso(s, -5)) for i, e, s, _, _ in rows]
    )
    target = _csv(
        "id,email,synced_at",
        [
            (str(i), te, _iso(tt) and _iso(tt).replace("+00:00", "Z"))
            for i, _, _, te, tt in rows
            if te
        ],
    )
    return _connection(
        ProjectFactory(),
        {"csv": source, "config": {"infer_types": True}},
        {"csv": target, "config": {"infer_types": True}},
    )


def _state(criterion) -> FreshnessState:
    return FreshnessState.objects.get(criterion=criterion)


def _assert_first(point: SliPoint, state: FreshnessState) -> None:
    assert point is not None, state.last_error
    got = {k: getattr(point, k) for k in ("total", "good", "late_now")}
    got |= {k: state.figures[k] for k in ("pending", "unmeasured")}
    got |= {k: getattr(point, k) for k in ("lag_p50", "lag_p95", "lag_p99", "lag_max")}
    assert got == FIRST
    assert state.figures["share_within_pct"] == 50.0
    assert [e["key"]["id"] for e in state.late_examples] == LATE_KEYS
    late7 = next(e for e in state.late_examples if e["key"]["id"] == 7)
    assert late7 == {
        "key": {"id": 7},
        "source_changed": (NOW - 600 * S).isoformat(),
        "target_changed": None,
        "late_by_seconds": 300.0,  # changed 600 s ago, due within 300 s
    }
    assert state.counted_until == NOW - 330 * S
    assert state.last_error == ""


def test_postgres_tables_with_known_lags_give_the_exact_figures(db, pg):
    criterion = _criterion(_pg_connection(pg))
    point = freshness.measure_and_record(criterion, now=NOW)
    _assert_first(point, _state(criterion))
    assert point.at == NOW
    # Both tables are in one database, read with one login: the database joins them.
    assert _state(criterion).figures["reading"]["mode"] == "joined"
    # Far more late records than a 99.9 % objective allows: the fast burn-rate rule pages.
    from planner.models import Alert

    burning = Alert.objects.get(fingerprint__startswith=f"slo:{criterion.pk}:", state="open")
    assert burning.fingerprint.endswith(":fast") and burning.severity == "critical"


def test_the_next_measurement_counts_only_newly_decided_records_and_reads_only_recent_ones(db, pg):
    dsn, name = pg
    criterion = _criterion(_pg_connection(pg))
    freshness.measure_and_record(criterion, now=NOW)
    with psycopg.connect(**dsn, dbname=name, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO marketing VALUES (9, 'i@x.org', %s)",
            ((NOW - 20 * S).replace(tzinfo=None),),
        )
    later = NOW + 300 * S
    point = freshness.measure_and_record(criterion, now=later)
    state = _state(criterion)
    # Counted: changed in [NOW - 330 s, later - 330 s) = keys 9 (lag 100 s) and 10 (lag 30 s).
    # 6, 7, 8 and 12 are still late: a late record stays late until the target shows it.
    assert (point.total, point.good, point.late_now) == (2, 2, 4)
    assert [e["key"]["id"] for e in state.late_examples] == LATE_KEYS
    assert (point.lag_p50, point.lag_max) == (30.0, 100.0)
    # Pushed down: only the records changed since the oldest late record (an hour ago) or
    # since the cutoff minus the 5-minute overlap, whichever is earlier.
    assert state.figures["reading"]["source_rows"] == 12  # all but 11 (no change time)
    assert state.figures["reading"]["read_from"] == HOUR_AGO.isoformat()
    assert state.counted_until == later - 330 * S
    assert SliPoint.objects.filter(criterion=criterion).count() == 2


@pytest.mark.parametrize("make", [_sqlite_connection, _csv_connection], ids=["sqlite", "csv"])
def test_sqlite_and_csv_give_the_same_figures(db, settings, make):
    settings.AETHON_RUN_CHUNK_ROWS = 3
    criterion = _criterion(make())
    point = freshness.measure_and_record(criterion, now=NOW)
    _assert_first(point, _state(criterion))


def test_small_chunks_give_the_same_figures_as_one(db, pg, settings):
    settings.AETHON_RUN_CHUNK_ROWS = 2
    settings.AETHON_RUN_JOIN = False  # the read path, chunk against chunk
    criterion = _criterion(_pg_connection(pg))
    point = freshness.measure_and_record(criterion, now=NOW)
    state = _state(criterion)
    _assert_first(point, state)
    assert state.figures["reading"]["peak_rows_held"] <= 8


def test_a_compound_key_is_matched_on_all_its_parts(db):
    rows = [
        (1, 1, "a@x.org", HOUR_AGO.isoformat(), (HOUR_AGO + 5 * S).isoformat()),
        (2, 1, "b@x.org", HOUR_AGO.isoformat(), (HOUR_AGO + 50 * S).isoformat()),
        (1, 2, "c@x.org", HOUR_AGO.isoformat(), None),  # (1, 2) absent in the target
    ]
    source = _sqlite(
        "crm",
        "tenant INTEGER, id INTEGER, email TEXT, updated_at TEXT",
        [r[:4] for r in rows],
    )
    # The target has (2, 2), not (1, 2): a key matched on `id` alone would call it reflected.
    target = _sqlite(
        "marketing",
        "tenant INTEGER, id INTEGER, email TEXT, synced_at TEXT",
        [
            (1, 1, "a@x.org", rows[0][4]),
            (2, 1, "b@x.org", rows[1][4]),
            (2, 2, "c@x.org", rows[1][4]),
        ],
    )
    ep = {"kind": SystemEndpoint.Kind.SQLITE}
    connection = _connection(
        ProjectFactory(),
        {**ep, "dataset": "crm", "upload": source, "upload_name": "crm.db"},
        {**ep, "dataset": "marketing", "upload": target, "upload_name": "marketing.db"},
        key="tenant,id",
    )
    criterion = _criterion(connection)
    point = freshness.measure_and_record(criterion, now=NOW)
    assert (point.total, point.good, point.late_now, point.lag_max) == (3, 2, 1, 50.0)
    assert _state(criterion).late_examples[0]["key"] == {"tenant": 1, "id": 2}


def test_a_created_basis_needs_the_record_not_its_current_values(db, pg):
    connection = _pg_connection(pg)
    FreshnessSettings.objects.filter(connection=connection).update(basis="created")
    criterion = _criterion(connection)
    point = freshness.measure_and_record(criterion, now=NOW)
    # Key 8 is there (different email, synced 5 s after): on time for a "new records" promise.
    assert (point.total, point.good, point.late_now) == (10, 6, 3)


def test_a_system_that_cannot_be_read_records_nothing_and_says_why(db, pg):
    connection = _pg_connection(pg)
    SystemEndpoint.objects.filter(system=connection.target).update(dataset="no_such_table")
    criterion = _criterion(connection)
    assert freshness.measure_and_record(criterion, now=NOW) is None
    state = _state(criterion)
    assert "no_such_table" in state.last_error
    assert state.error_at == NOW
    assert state.counted_until is None
    assert not SliPoint.objects.filter(criterion=criterion).exists()


def test_a_missing_time_field_is_named(db, pg):
    connection = _pg_connection(pg)
    FreshnessSettings.objects.filter(connection=connection).update(target_time_field="changed")
    criterion = _criterion(connection)
    assert freshness.measure_and_record(criterion, now=NOW) is None
    assert _state(criterion).last_error == "Target (Marketing) has no field changed."


def test_the_window_bounds_the_first_measurement(db, pg):
    # A 30-minute window: the first point counts only records changed in the last 30 minutes.
    criterion = _criterion(_pg_connection(pg), window_value=30, window_unit="minutes")
    point = freshness.measure_and_record(criterion, now=NOW)
    assert (point.total, point.good, point.late_now) == (2, 0, 2)  # keys 7 and 8


@pytest.fixture
def mysql_tables(settings):
    pymysql = pytest.importorskip("pymysql")
    try:
        db = pymysql.connect(
            host="127.0.0.1", user="root", password="", database="test", connect_timeout=3
        )
    except pymysql.err.MySQLError as exc:
        pytest.skip(f"MySQL/MariaDB on 127.0.0.1:3306 is unreachable: {exc}")
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    suffix = uuid.uuid4().hex[:8]
    names = (f"crm_{suffix}", f"marketing_{suffix}")
    rows = _rows()
    naive = lambda v: v.astimezone(UTC).replace(tzinfo=None) if v else None  # noqa: E731
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {names[0]} (id INT, email TEXT, updated_at DATETIME(6))")
        cur.execute(f"CREATE TABLE {names[1]} (id INT, email TEXT, synced_at DATETIME(6))")
        cur.executemany(
            f"INSERT INTO {names[0]} VALUES (%s, %s, %s)",
            [(i, e, naive(s)) for i, e, s, _, _ in rows],
        )
        cur.executemany(
            f"INSERT INTO {names[1]} VALUES (%s, %s, %s)",
            [(i, te, naive(tt)) for i, _, _, te, tt in rows if te is not None],
        )
    db.commit()
    try:
        yield names
    finally:
        with db.cursor() as cur:
            for name in names:
                cur.execute(f"DROP TABLE IF EXISTS {name}")
        db.close()


def test_mysql_gives_the_same_figures_and_pushes_the_filter_down(db, mysql_tables):
    def endpoint(table):
        return {
            "kind": SystemEndpoint.Kind.MYSQL,
            "config": {"host": "127.0.0.1", "port": 3306, "database": "test", "user": "root"},
            "dataset": table,
            "upload": "",
            "upload_name": "",
        }

    connection = _connection(ProjectFactory(), *(endpoint(t) for t in mysql_tables))
    criterion = _criterion(connection)
    point = freshness.measure_and_record(criterion, now=NOW)
    _assert_first(point, _state(criterion))
    point = freshness.measure_and_record(criterion, now=NOW + 300 * S)
    # Read from the oldest late record (an hour ago): all but 11, whose time is NULL.
    assert _state(criterion).figures["reading"]["source_rows"] == 12
    assert (point.total, point.good, point.late_now) == (2, 1, 5)  # 9 still missing: late


def test_a_concurrent_measurement_that_finished_first_wins(db, monkeypatch):
    criterion = _criterion(_sqlite_connection())
    real = freshness.measure

    def racing(c, **kwargs):
        out = real(c, **kwargs)
        # Another worker stored its measurement of the same records meanwhile.
        FreshnessState.objects.filter(criterion=c).update(counted_until=NOW)
        return out

    monkeypatch.setattr(freshness, "measure", racing)
    assert freshness.measure_and_record(criterion, now=NOW) is None
    assert not SliPoint.objects.filter(criterion=criterion).exists()


def test_an_http_json_source_gives_the_same_figures(db, settings):
    from tests.connectors import Reply, serve

    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    rows = _rows()
    records = [{"id": i, "email": e, "updated_at": _iso(s, 3)} for i, e, s, _, _ in rows]
    target = _sqlite(
        "marketing",
        "id INTEGER, email TEXT, synced_at TEXT",
        [(i, te, _iso(tt)) for i, _, _, te, tt in rows if te is not None],
    )
    with serve(lambda request: Reply(body={"data": records})) as api:
        connection = _connection(
            ProjectFactory(),
            {
                "kind": SystemEndpoint.Kind.HTTP_JSON,
                "config": {"base_url": api.url, "records_path": "data"},
                "dataset": "/contacts",
                "upload": "",
                "upload_name": "",
            },
            {
                "kind": SystemEndpoint.Kind.SQLITE,
                "dataset": "marketing",
                "upload": target,
                "upload_name": "marketing.db",
            },
        )
        criterion = _criterion(connection)
        point = freshness.measure_and_record(criterion, now=NOW)
    state = _state(criterion)
    _assert_first(point, state)
    reading = state.figures["reading"]
    # Read page by page and sorted through disk, as runs read an API.
    assert (reading["mode"], reading["source"], reading["target"]) == (
        "streamed",
        "sorted through disk",
        "key-ordered chunks",
    )


def _random_files(rng, fmt: str, n: int) -> tuple[bytes, bytes]:
    """Source and target uploads of ``n`` records with random lags, gaps and changed emails."""
    source, target = [], []
    for i in rng.sample(range(1, 10 * n), n):
        email = rng.choice(["a@x.org", "b@x.org", "ü@x.org", "d@x.org"])
        changed = None if rng.random() < 0.05 else NOW - rng.randint(0, 7200) * S
        source.append({"id": i, "email": email, "updated_at": _iso(changed, rng.choice([0, 2]))})
        if rng.random() < 0.8:
            synced = None if rng.random() < 0.05 or changed is None else changed
            synced = synced and synced + rng.randint(-60, 900) * S
            other = email if rng.random() < 0.9 else "old@x.org"
            target.append({"id": i, "email": other, "synced_at": _iso(synced)})
    if fmt == "ndjson":
        return tuple(  # type: ignore[return-value]
            "".join(json.dumps(r) + "\n" for r in records).encode() for records in (source, target)
        )
    return tuple(  # type: ignore[return-value]
        _csv(",".join(records[0]), [[str(v or "") for v in r.values()] for r in records]).encode()
        for records in (source, target)
    )


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_files_sorted_through_disk_give_the_figures_of_the_whole_read(
    db, settings, monkeypatch, fmt
):
    from planner.connectors import csv_blocks
    from planner.runs import endpoints, spill

    settings.AETHON_RUN_CHUNK_ROWS = 7
    monkeypatch.setattr(spill, "RUN_ROWS", 30)
    monkeypatch.setattr(spill, "MIN_PIECE_ROWS", 3)
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", 500)
    source, target = _random_files(random.Random(4), fmt, 150)
    name = f"records.{fmt}"
    connection = _connection(
        ProjectFactory(),
        {"upload": ContentFile(source, name=name), "upload_name": name},
        {"upload": ContentFile(target, name=name), "upload_name": name},
    )
    criterion = _criterion(connection, window_value=3, window_unit="hours")
    on_disk, reading = freshness.measure(criterion, now=NOW, counted_from=None)
    assert (reading["mode"], reading["source"], reading["target"]) == (
        "streamed",
        "sorted through disk",
        "sorted through disk",
    )
    monkeypatch.setattr(endpoints, "upload_file", lambda endpoint: None)
    whole, held = freshness.measure(criterion, now=NOW, counted_from=None)
    assert held["mode"] == "whole"
    assert held["why_whole"] == (
        f"Source (CRM) cannot be read in key order: the {fmt.upper()} file was given as "
        f"content, not as a file on disk; Target (Marketing) cannot be read in key order: "
        f"the {fmt.upper()} file was given as content, not as a file on disk"
    )
    assert on_disk == whole
    assert reading["source_rows"] == held["source_rows"] == 150
    # The data gave every kind of record: on time, late, pending, unmeasured.
    assert on_disk.good and on_disk.late_now and on_disk.pending and on_disk.unmeasured


def test_a_repeated_target_key_is_judged_by_its_first_row_as_the_reconciliation_does():
    import polars as pl

    from planner.metrics import freshness as lag

    t0 = datetime(2026, 6, 1, 11, tzinfo=UTC)
    source = pl.DataFrame(
        {"id": [1, 2, 2], "email": ["a", "b", "b"], lag.SOURCE_TIME: [t0, t0, t0]}
    )
    target = pl.DataFrame(
        {
            "id": [1, 1, 2],
            "email": ["old", "a", "b"],
            lag.TARGET_TIME: [t0 + S, t0 + 2 * S, t0 + 3 * S],
        }
    )
    judged = freshness.judge_range(source, target, ["id"], ["email"])
    assert judged.select("id", lag.AGREES, lag.TARGET_TIME).rows() == [
        (1, False, t0 + S),  # the first target row of key 1 differs
        (2, True, t0 + 3 * S),  # each source row of key 2 is judged
        (2, True, t0 + 3 * S),
    ]


def _pg_text(value: datetime | None) -> str | None:
    """A time as PostgreSQL prints a timestamptz: an offset of whole hours is just '+02'."""
    if value is None:
        return None
    return value.astimezone(timezone(timedelta(hours=2))).strftime("%Y-%m-%d %H:%M:%S.%f+02")


def test_sqlite_unix_seconds_and_hour_offsets_are_read_when_the_filter_is_pushed_down(db):
    """A window makes the read incremental (a WHERE on the change time): Unix seconds and
    text whose offset is whole hours must still be read, as a whole read reads them."""
    rows = _rows()
    ep = {"kind": SystemEndpoint.Kind.SQLITE}
    source = _sqlite(
        "crm",
        "id INTEGER, email TEXT, updated_at REAL",
        [(i, e, s.timestamp() if s else None) for i, e, s, _, _ in rows],
    )
    target = _sqlite(
        "marketing",
        "id INTEGER, email TEXT, synced_at TEXT",
        [(i, te, _pg_text(tt)) for i, _, _, te, tt in rows if te is not None],
    )
    connection = _connection(
        ProjectFactory(),
        {**ep, "dataset": "crm", "upload": source, "upload_name": "crm.db"},
        {**ep, "dataset": "marketing", "upload": target, "upload_name": "marketing.db"},
    )
    criterion = _criterion(connection, window_value=1, window_unit="days")
    point = freshness.measure_and_record(criterion, now=NOW)
    state = _state(criterion)
    assert state.figures["reading"]["read_from"] == (NOW - timedelta(days=1, minutes=5)).isoformat()
    got = {k: getattr(point, k) for k in ("total", "good", "late_now", "lag_p50", "lag_p95")}
    assert got == {k: FIRST[k] for k in got}
    assert state.figures["pending"] == 1
    assert [e["key"]["id"] for e in state.late_examples] == LATE_KEYS
    # A record without a change time is not read by an incremental read (as on PostgreSQL).
    assert state.figures["unmeasured"] == 0


def test_a_record_never_delivered_stays_late_however_long_ago_it_changed(db, pg):
    criterion = _criterion(_pg_connection(pg))
    assert freshness.measure_and_record(criterion, now=NOW).late_now == 4  # 6, 7, 8, 12
    for minutes in (10, 20, 60, 120):
        point = freshness.measure_and_record(criterion, now=NOW + timedelta(minutes=minutes))
        assert point.late_now == 5, minutes  # and 9 (due 3 minutes after NOW): nothing fixed
    state = _state(criterion)
    assert [e["key"]["id"] for e in state.late_examples] == [6, 7, 8, 9, 12]
    # Record 7 reaches the target: it is no longer late, and the read starts later.
    dsn, name = pg
    with psycopg.connect(**dsn, dbname=name, autocommit=True) as conn:
        conn.execute("INSERT INTO marketing VALUES (7, 'g@x.org', %s)", (NOW.replace(tzinfo=None),))
    point = freshness.measure_and_record(criterion, now=NOW + timedelta(minutes=121))
    assert point.late_now == 4


@pytest.mark.parametrize("join", [True, False], ids=["joined", "read"])
def test_a_target_with_no_record_since_the_cutoff_leaves_every_decided_record_late(
    db, pg, settings, join
):
    settings.AETHON_RUN_JOIN = join
    rows = [(i, e, s, None, None) for i, e, s, _, _ in _rows()]
    criterion = _criterion(_pg_connection(pg, rows))
    point = freshness.measure_and_record(criterion, now=NOW)
    assert point is not None, _state(criterion).last_error
    # 1-8, 12 and 13 are decided and none arrived; 9 and 10 may still be on their way.
    assert (point.total, point.good, point.late_now, point.lag_max) == (10, 0, 10, None)
    assert _state(criterion).figures["pending"] == 2


def test_a_csv_key_written_with_a_leading_zero_is_another_record(db):
    """Inference keeps a key as written: "007" in the source is not the target's "7"."""
    synced = (HOUR_AGO + 5 * S).isoformat()
    source = _csv(
        "id,email,updated_at",
        [("007", "a@x.org", HOUR_AGO.isoformat()), ("8", "b@x.org", HOUR_AGO.isoformat())],
    )
    target = _csv(
        "id,email,synced_at",
        [("7", "a@x.org", synced), ("8", "b@x.org", synced), ("09", "c@x.org", synced)],
    )
    connection = _connection(
        ProjectFactory(),
        {"csv": source, "config": {"infer_types": True}},
        {"csv": target, "config": {"infer_types": True}},
    )
    # The key's rule keeps the text (a key mapped to a number would join them on purpose).
    FieldMapping.objects.filter(connection=connection, target_field="id").update(
        source_type="string", target_type="string"
    )
    criterion = _criterion(connection)
    point = freshness.measure_and_record(criterion, now=NOW)
    state = _state(criterion)
    assert point is not None, state.last_error
    assert (point.total, point.good, point.late_now) == (2, 1, 1)
    assert [e["key"] for e in state.late_examples] == [{"id": "007"}]
