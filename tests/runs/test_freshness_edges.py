"""Propagation lag on hand-computed edges, the same records on every connector.

Target 5 minutes, clock-skew allowance 30 s: a record is decided when it changed before
NOW - 330 s. Lags sit exactly at the target and one microsecond either side of it; target
times sit exactly at the allowance and one microsecond beyond it; more records are late than
the examples a measurement keeps.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from django.core.files.base import ContentFile

from planner.models import FreshnessSettings, MetricKey, SuccessCriterion, SystemEndpoint
from planner.runs import freshness
from tests.factories import (
    ConnectionFactory,
    CriterionFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)
from tests.runs.conftest import map_same_names, pg_endpoint

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
UNTIL = NOW - timedelta(seconds=330)
B = NOW - timedelta(hours=2)
S = timedelta(seconds=1)
US = timedelta(microseconds=1)


def _rows():
    """(key, source email, source changed, target email or None when absent, target synced)."""
    rows = [
        (1, "a", B, "a", B + 300 * S),  # lag exactly the target
        (2, "a", B, "a", B + 300 * S + US),  # one microsecond over
        (3, "a", B, "a", B + 300 * S - US),  # one microsecond under
        (4, "a", B, "a", B),  # lag 0
        (5, "a", B, "a", B - 30 * S),  # target clock behind by the allowance: lag 0
        (6, "a", B, "a", B - 30 * S - US),  # beyond the allowance: an older version, late
        (7, "a", UNTIL, None, None),  # changed exactly at the cutoff: pending
        (8, "a", UNTIL - US, None, None),  # a microsecond before it: late
        (9, "a", None, "a", B),  # no change time: unmeasured
    ]
    rows += [(i, "a", B + i * S, None, None) for i in range(10, 22)]  # 12 never arrived
    rows.append((22, "a", B, "old", B + S))  # still different: late
    rows.append((23, "a", B, "a", None))  # the target's time unknown: late
    return rows


LATE = [6, 8, *range(10, 22), 22, 23]
FIGURES = {
    "total": 21,
    "good": 4,  # 1, 3, 4, 5
    "late_now": 16,
    "pending": 1,
    "unmeasured": 1,
    # nearest rank over [0, 0, 299.999999, 300, 300.000001]
    "lag_p50": 299.999999,
    "lag_p95": 300.000001,
    "lag_p99": 300.000001,
    "lag_max": 300.000001,
}


OFFSETS = [None]


def _iso(value):
    """ISO 8601 text, at each call in the next of ``OFFSETS`` (None: as given)."""
    if value is None:
        return None
    OFFSETS.append(OFFSETS.pop(0))
    if OFFSETS[-1] is not None:
        value = value.astimezone(timezone(timedelta(minutes=OFFSETS[-1])))
    return value.isoformat()


def _connection(source_ep: dict, target_ep: dict, key_type="integer"):
    project = ProjectFactory()
    source = SystemFactory(project=project, name="CRM")
    target = SystemFactory(project=project, name="Marketing")
    SystemEndpointFactory(system=source, key_fields="id", **source_ep)
    SystemEndpointFactory(system=target, key_fields="id", **target_ep)
    connection = ConnectionFactory(project=project, source=source, target=target)
    map_same_names(connection, [("id", key_type), ("email", "string")])
    FreshnessSettings.objects.create(
        project=project,
        connection=connection,
        source_time_field="updated_at",
        target_time_field="synced_at",
        skew_seconds=30,
        overlap_seconds=0,
    )
    return connection


def _criterion(connection, comparator="<=", target=5, unit="minutes"):
    made = CriterionFactory(
        project=connection.project,
        metric="contacts in the marketing tool",
        metric_key=MetricKey.FRESHNESS,
        comparator=comparator,
        target=target,
        unit=unit,
        freshness_connection=connection,
        window_value=None,
    )
    return SuccessCriterion.objects.get(pk=made.pk)


def _split(rows):
    source = [(k, e, s) for k, e, s, _, _ in rows]
    target = [(k, te, tt) for k, _, _, te, tt in rows if te is not None]
    return source, target


def _pg(pg, rows, key_sql="int"):
    dsn, name = pg
    source, target = _split(rows)
    with psycopg.connect(**dsn, dbname=name, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE crm (id {key_sql}, email text, updated_at timestamptz)")
        conn.execute(f"CREATE TABLE marketing (id {key_sql}, email text, synced_at timestamp)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO crm VALUES (%s, %s, %s)", source)
            cur.executemany(
                "INSERT INTO marketing VALUES (%s, %s, %s)",
                [(k, e, t.replace(tzinfo=None) if t else None) for k, e, t in target],
            )
    return pg_endpoint(dsn, name, "crm"), pg_endpoint(dsn, name, "marketing")


def _sqlite(rows, key_sql="INTEGER"):
    source, target = _split(rows)

    def upload(table, time_name, records):
        conn = sqlite3.connect(":memory:")
        conn.execute(f"CREATE TABLE {table} (id {key_sql}, email TEXT, {time_name} TEXT)")
        conn.executemany(
            f"INSERT INTO {table} VALUES (?, ?, ?)", [(k, e, _iso(t)) for k, e, t in records]
        )
        conn.commit()
        data = conn.serialize()
        conn.close()
        return {
            "kind": SystemEndpoint.Kind.SQLITE,
            "dataset": table,
            "upload": ContentFile(data, name=f"{table}.db"),
            "upload_name": f"{table}.db",
        }

    return upload("crm", "updated_at", source), upload("marketing", "synced_at", target)


def _files(rows, fmt):
    source, target = _split(rows)

    def records(time_name, items):
        return [{"id": k, "email": e, time_name: _iso(t)} for k, e, t in items]

    def content(items):
        if fmt == "ndjson":
            return "".join(json.dumps(r) + "\n" for r in items).encode()
        head = ",".join(items[0])
        lines = [",".join("" if v is None else str(v) for v in r.values()) for r in items]
        return (head + "\n" + "\n".join(lines) + "\n").encode()

    name = f"records.{fmt}"
    return tuple(
        {"upload": ContentFile(content(records(n, items)), name=name), "upload_name": name}
        for n, items in (("updated_at", source), ("synced_at", target))
    )


@pytest.fixture
def mysql_db(settings):
    pymysql = pytest.importorskip("pymysql")
    try:
        db = pymysql.connect(
            host="127.0.0.1", user="root", password="", database="test", connect_timeout=3
        )
    except pymysql.err.MySQLError as exc:
        pytest.skip(f"MySQL/MariaDB on 127.0.0.1:3306 is unreachable: {exc}")
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    made = []

    def load(rows, key_sql="INT"):
        suffix = uuid.uuid4().hex[:8]
        names = (f"crm_{suffix}", f"marketing_{suffix}")
        made.extend(names)
        source, target = _split(rows)
        naive = lambda v: v.astimezone(UTC).replace(tzinfo=None) if v else None  # noqa: E731
        with db.cursor() as cur:
            for table, time_name, items in (
                (names[0], "updated_at", source),
                (names[1], "synced_at", target),
            ):
                cur.execute(
                    f"CREATE TABLE {table} (id {key_sql}, email TEXT, {time_name} DATETIME(6))"
                )
                cur.executemany(
                    f"INSERT INTO {table} VALUES (%s, %s, %s)",
                    [(k, e, naive(t)) for k, e, t in items],
                )
        db.commit()
        return tuple(
            {
                "kind": SystemEndpoint.Kind.MYSQL,
                "config": {"host": "127.0.0.1", "port": 3306, "database": "test", "user": "root"},
                "dataset": table,
                "upload": "",
                "upload_name": "",
            }
            for table in names
        )

    yield load
    with db.cursor() as cur:
        for name in made:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
    db.close()


def _http(rows, settings):
    from tests.connectors import Reply, serve

    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    source, target = _split(rows)
    data = {
        "/crm": [{"id": k, "email": e, "updated_at": _iso(t)} for k, e, t in source],
        "/marketing": [{"id": k, "email": e, "synced_at": _iso(t)} for k, e, t in target],
    }
    server = serve(lambda request: Reply(body={"data": data[request.path]}))
    api = server.__enter__()

    def endpoint(path):
        return {
            "kind": SystemEndpoint.Kind.HTTP_JSON,
            "config": {"base_url": api.url, "records_path": "data"},
            "dataset": path,
            "upload": "",
            "upload_name": "",
        }

    return server, (endpoint("/crm"), endpoint("/marketing"))


def _figures(criterion):
    point = freshness.measure_and_record(criterion, now=NOW)
    state = freshness.FreshnessState.objects.get(criterion=criterion)
    assert point is not None, state.last_error
    got = {k: getattr(point, k) for k in ("total", "good", "late_now")}
    got |= {k: state.figures[k] for k in ("pending", "unmeasured")}
    got |= {k: getattr(point, k) for k in ("lag_p50", "lag_p95", "lag_p99", "lag_max")}
    return got, state


CONNECTORS = ["pg-joined", "pg-read", "mysql", "sqlite", "csv", "ndjson", "http"]


def _endpoints(kind, rows, request, settings, text_key=False):
    if kind.startswith("pg"):
        settings.AETHON_RUN_JOIN = kind == "pg-joined"
        pg = request.getfixturevalue("pg_scratch")
        return _pg(pg, rows, "text" if text_key else "int"), None
    if kind == "mysql":
        return request.getfixturevalue("mysql_db")(rows, "VARCHAR(20)" if text_key else "INT"), None
    if kind == "sqlite":
        return _sqlite(rows, "TEXT" if text_key else "INTEGER"), None
    if kind in ("csv", "ndjson"):
        return _files(rows, kind), None
    server, eps = _http(rows, settings)
    return eps, server


@pytest.mark.parametrize("kind", CONNECTORS)
def test_every_connector_gives_the_hand_computed_figures(db, request, settings, kind):
    settings.AETHON_RUN_CHUNK_ROWS = 4
    (source, target), server = _endpoints(kind, _rows(), request, settings)
    try:
        criterion = _criterion(_connection(source, target))
        got, state = _figures(criterion)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    assert got == FIGURES
    if kind == "pg-joined":
        assert state.figures["reading"]["mode"] == "joined"
    assert state.figures["share_within_pct"] == 100.0 * 4 / 21
    assert [e["key"]["id"] for e in state.late_examples] == LATE[:10]
    assert state.figures["oldest_late"] == B.isoformat()
    six = state.late_examples[0]
    assert six == {
        "key": {"id": 6},
        "source_changed": B.isoformat(),
        "target_changed": (B - 30 * S - US).isoformat(),
        "late_by_seconds": 6900.0,
    }


@pytest.mark.parametrize(
    ("comparator", "good"),
    [("<=", 4), ("<", 3), ("=", 1), (">", 1), (">=", 2), ("!=", 4)],
)
@pytest.mark.parametrize("kind", ["pg-joined", "pg-read", "sqlite"])
def test_every_comparator_on_lags_at_and_around_the_target(
    db, request, settings, kind, comparator, good
):
    (source, target), _ = _endpoints(kind, _rows(), request, settings)
    criterion = _criterion(_connection(source, target), comparator=comparator)
    got, state = _figures(criterion)
    assert (got["good"], got["total"]) == (good, 21)
    assert state.figures["share_within_pct"] == 100.0 * good / 21


def _exact_rows(seconds: int):
    """Lags exactly ``seconds``, and a microsecond either side."""
    return [
        (1, "a", B, "a", B + seconds * S),
        (2, "a", B, "a", B + seconds * S + US),
        (3, "a", B, "a", B + seconds * S - US),
    ]


@pytest.mark.parametrize(
    ("comparator", "good"),
    [("<=", 2), ("<", 1), ("=", 1), (">", 1), (">=", 2), ("!=", 2)],
)
@pytest.mark.parametrize("target", ["0.07", "0.2825"])
@pytest.mark.parametrize("kind", ["pg-joined", "sqlite"])
def test_a_fractional_target_meets_a_lag_exactly_at_it(
    db, request, settings, kind, target, comparator, good
):
    """0.2825 hour is 1017 s exactly, not the float 1016.9999999999999 that 0.2825 × 3600
    gives (nor 0.07 hour 252.00000000000003): a lag of exactly the target is at it."""
    seconds = int(Decimal(target) * 3600)
    (source, target_ep), _ = _endpoints(kind, _exact_rows(seconds), request, settings)
    criterion = _criterion(
        _connection(source, target_ep), comparator=comparator, target=target, unit="hours"
    )
    got, _state = _figures(criterion)
    assert (got["good"], got["total"]) == (good, 3)


def _text_rows():
    late = ["e", "E", "Z", "z", "ä", "b", "B", "c", "Ω", "10", "9", "ß"]
    rows = [
        ("a", "a", B, "a", B + 10 * S),
        ("A", "a", B, "a", B + 300 * S),
        ("é", "a", B, "a", B - 30 * S),
        (None, "a", B, None, None),  # no key: never measured
    ]
    return rows + [(k, "a", B + i * S, None, None) for i, k in enumerate(late)]


@pytest.mark.parametrize("rule", ["identity", "trim | lower"])
@pytest.mark.parametrize("kind", CONNECTORS)
def test_text_keys_differing_by_case_and_accent_are_other_records(
    db, request, settings, kind, rule
):
    settings.AETHON_RUN_CHUNK_ROWS = 4
    (source, target), server = _endpoints(kind, _text_rows(), request, settings, text_key=True)
    try:
        connection = _connection(source, target, key_type="string")
        connection.field_mappings.filter(target_field="email").update(rule=rule)
        got, state = _figures(_criterion(connection))
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    assert got == {
        "total": 15,
        "good": 3,
        "late_now": 12,
        "pending": 0,
        "unmeasured": 0,
        "lag_p50": 10.0,
        "lag_p95": 300.0,
        "lag_p99": 300.0,
        "lag_max": 300.0,
    }
    if kind == "pg-joined":
        assert state.figures["reading"]["mode"] == "joined"
    # By code point, as polars and the databases' binary collations order text.
    keys = [e["key"]["id"] for e in state.late_examples]
    assert keys == ["10", "9", "B", "E", "Z", "b", "c", "e", "z", "ß"]
    assert state.figures["oldest_late"] == B.isoformat()


def _incremental_rows():
    old = [
        (i, "a", B - timedelta(days=1), "a", B - timedelta(days=1) + i * S) for i in range(1, 51)
    ]
    return [
        *old,
        # Never arrived; the target holds an older version, from before any read's start.
        (60, "new", NOW - 20 * 60 * S, "old", NOW - 2 * 3600 * S),
        # Changed a minute ago, arrives 90 s after: counted by the second measurement.
        (61, "a", NOW - 60 * S, "a", NOW + 30 * S),
    ]


@pytest.mark.parametrize("kind", CONNECTORS)
def test_the_next_measurement_reads_only_recent_changes_and_keeps_a_late_record_late(
    db, request, settings, kind
):
    (source, target), server = _endpoints(kind, _incremental_rows(), request, settings)
    try:
        criterion = _criterion(_connection(source, target))
        first = freshness.measure_and_record(criterion, now=NOW)
        state = freshness.FreshnessState.objects.get(criterion=criterion)
        assert first is not None, state.last_error
        assert (first.total, first.good, first.late_now, first.lag_max) == (51, 50, 1, 50.0)
        assert state.figures["pending"] == 0
        later = NOW + 600 * S
        second = freshness.measure_and_record(criterion, now=later)
        state = freshness.FreshnessState.objects.get(criterion=criterion)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    assert second is not None, state.last_error
    # Counted: changed in [NOW - 330 s, later - 330 s), only 61; 60 is still late.
    assert (second.total, second.good, second.late_now, second.lag_max) == (1, 1, 1, 90.0)
    assert [e["key"]["id"] for e in state.late_examples] == [60]
    assert state.late_examples[0]["late_by_seconds"] == 1500.0
    reading = state.figures["reading"]
    assert reading["read_from"] == (NOW - 20 * 60 * S).isoformat()
    if kind in ("pg-joined", "pg-read", "mysql", "sqlite"):
        assert reading["source_rows"] == 2  # the filter went down to the database


@pytest.mark.parametrize("kind", ["sqlite", "csv", "ndjson", "http"])
def test_text_times_with_offsets_that_vary_from_record_to_record(db, request, settings, kind):
    """One column, many offsets (+02:00, -05:00, +05:30, UTC): each is its own instant."""
    OFFSETS[:] = [120, -300, 330, 0]
    try:
        (source, target), server = _endpoints(kind, _rows(), request, settings)
    finally:
        OFFSETS[:] = [None]
    try:
        criterion = _criterion(_connection(source, target))
        got, state = _figures(criterion)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    assert got == FIGURES
    assert [e["key"]["id"] for e in state.late_examples] == LATE[:10]


@pytest.mark.parametrize("rule", ["identity", "trim | lower"])
@pytest.mark.parametrize("kind", CONNECTORS)
def test_the_oldest_late_record_may_be_past_the_examples(db, request, settings, kind, rule):
    rows = [*_rows(), (30, "a", B - 3600 * S, None, None), (None, "a", B - 7200 * S, None, None)]
    (source, target), server = _endpoints(kind, rows, request, settings)
    try:
        connection = _connection(source, target)
        connection.field_mappings.filter(target_field="email").update(rule=rule)
        got, state = _figures(_criterion(connection))
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    assert got == FIGURES | {"total": 22, "late_now": 17}
    assert [e["key"]["id"] for e in state.late_examples] == LATE[:10]
    # 30, the 17th late record by key, changed first; the record without a key is not one.
    assert state.figures["oldest_late"] == (B - 3600 * S).isoformat()
    assert state.figures["reading"]["null_keys_source"] == 1
    if kind == "pg-joined":
        assert state.figures["reading"]["mode"] == "joined"


@pytest.mark.parametrize(
    ("tolerance", "agreeing"),
    [("0.01", [1, 2, 3]), ("1%", [1, 2, 3, 4]), ("", [1])],
)
@pytest.mark.parametrize("join", [True, False], ids=["joined", "read"])
def test_a_tolerance_decides_whether_the_target_reflects_the_version(
    db, pg_scratch, settings, join, tolerance, agreeing
):
    settings.AETHON_RUN_JOIN = join
    dsn, name = pg_scratch
    amounts = [(1, "100.000", "100.000"), (2, "100.000", "100.010"), (3, "100.000", "99.990")]
    amounts += [(4, "100.000", "100.900"), (5, "100.000", "101.100"), (6, "100.000", None)]
    with psycopg.connect(**dsn, dbname=name, autocommit=True) as conn:
        conn.execute("CREATE TABLE crm (id int, amount numeric(12,3), updated_at timestamptz)")
        conn.execute("CREATE TABLE marketing (id int, amount numeric(12,3), synced_at timestamp)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO crm VALUES (%s, %s, %s)", [(i, s, B) for i, s, _ in amounts]
            )
            cur.executemany(
                "INSERT INTO marketing VALUES (%s, %s, %s)",
                [(i, t, (B + i * S).replace(tzinfo=None)) for i, _, t in amounts],
            )
    source, target = pg_endpoint(dsn, name, "crm"), pg_endpoint(dsn, name, "marketing")
    project = ProjectFactory()
    systems = [SystemFactory(project=project, name=n) for n in ("CRM", "Marketing")]
    for system, ep in zip(systems, (source, target), strict=True):
        SystemEndpointFactory(system=system, key_fields="id", **ep)
    connection = ConnectionFactory(project=project, source=systems[0], target=systems[1])
    map_same_names(
        connection,
        [("id", "integer"), ("amount", "decimal")],
        tolerance=lambda n: tolerance if n == "amount" else "",
    )
    FreshnessSettings.objects.create(
        project=project,
        connection=connection,
        source_time_field="updated_at",
        target_time_field="synced_at",
        skew_seconds=30,
        overlap_seconds=0,
    )
    got, state = _figures(_criterion(connection))
    late = [i for i, _, _ in amounts if i not in agreeing]
    assert (got["total"], got["good"], got["late_now"]) == (6, len(agreeing), len(late))
    assert got["lag_max"] == float(max(agreeing))
    assert [e["key"]["id"] for e in state.late_examples] == late
    # A tolerance is applied to fetched rows: the join reads them all, so the read path does.
    joined = join and not tolerance
    assert state.figures["reading"]["mode"] == ("joined" if joined else "streamed")


@pytest.mark.parametrize("kind", CONNECTORS)
def test_a_created_basis_needs_the_key_not_the_values_on_every_connector(
    db, request, settings, kind
):
    settings.AETHON_RUN_CHUNK_ROWS = 4
    (source, target), server = _endpoints(kind, _rows(), request, settings)
    try:
        connection = _connection(source, target)
        FreshnessSettings.objects.filter(connection=connection).update(basis="created")
        got, state = _figures(_criterion(connection))
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    # 22 is there (another email) a second after: reflected for a "new records" promise.
    assert got == FIGURES | {"good": 5, "late_now": 15, "lag_p50": 1.0}
    assert [e["key"]["id"] for e in state.late_examples] == [6, 8, *range(10, 18)]


@pytest.mark.parametrize(
    ("source_kind", "target_kind"),
    [
        ("pg-joined", "mysql"),
        ("mysql", "pg-joined"),
        ("pg-joined", "sqlite"),
        ("sqlite", "mysql"),
        ("csv", "pg-joined"),
        ("http", "mysql"),
        ("mysql", "ndjson"),
    ],
)
def test_text_keys_across_two_kinds_of_system(db, request, settings, source_kind, target_kind):
    """The CRM in one kind of system, the marketing tool in another: both sides must order
    text keys alike (by code point), or the merge would pair the wrong records."""
    settings.AETHON_RUN_CHUNK_ROWS = 3
    servers = []
    try:
        (source, _t), server = _endpoints(source_kind, _text_rows(), request, settings, True)
        servers.append(server)
        (_s, target), server = _endpoints(target_kind, _text_rows(), request, settings, True)
        servers.append(server)
        connection = _connection(source, target, key_type="string")
        got, state = _figures(_criterion(connection))
    finally:
        for server in servers:
            if server is not None:
                server.__exit__(None, None, None)
    assert (got["total"], got["good"], got["late_now"], got["lag_max"]) == (15, 3, 12, 300.0)
    keys = [e["key"]["id"] for e in state.late_examples]
    assert keys == ["10", "9", "B", "E", "Z", "b", "c", "e", "z", "ß"]


def _random_rows(seed: int, n: int = 300):
    import random

    rng = random.Random(seed)
    rows = []
    for key in rng.sample(range(1, 5 * n), n):
        changed = None if rng.random() < 0.03 else NOW - rng.randint(0, 7200 * 10**6) * US
        email = rng.choice(["a", "b"])
        if rng.random() < 0.2 or changed is None:
            rows.append((key, email, changed, None, None))
            continue
        synced = changed + rng.randint(-40 * 10**6, 600 * 10**6) * US
        if rng.random() < 0.05:
            synced = None
        rows.append((key, email, changed, email if rng.random() < 0.9 else "old", synced))
    return rows


@pytest.mark.parametrize("kind", ["pg-joined", "mysql", "sqlite", "csv", "ndjson", "http"])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_records_give_the_read_paths_figures_on_every_connector(
    db, request, settings, kind, seed
):
    from planner.runs.freshness import measure

    settings.AETHON_RUN_CHUNK_ROWS = 7
    rows = _random_rows(seed)

    def both(criterion):
        first, _ = measure(criterion, now=NOW, counted_from=None)
        # The next measurement, from the first's cutoff, going back to its oldest late one.
        later, _ = measure(
            criterion,
            now=NOW + 900 * S,
            counted_from=first.counted_until,
            late_from=first.oldest_late,
        )
        return first, later

    got = {}
    for each in ("pg-read", kind) if kind != "pg-joined" else ("pg-joined",):
        (source, target), server = _endpoints(each, rows, request, settings)
        try:
            criterion = _criterion(_connection(source, target))
            got[each] = both(criterion)
            if each == "pg-joined":
                settings.AETHON_RUN_JOIN = False
                got["pg-read"] = both(criterion)
        finally:
            if server is not None:
                server.__exit__(None, None, None)
    assert got[kind] == got["pg-read"]
    assert got[kind][0].late_now > 10 and got[kind][0].good and got[kind][1].total


@pytest.mark.parametrize("kind", ["pg-joined", "pg-read", "mysql", "csv"])
def test_without_an_allowance_a_target_clock_a_microsecond_behind_is_an_older_version(
    db, request, settings, kind
):
    (source, target), server = _endpoints(kind, _rows(), request, settings)
    try:
        connection = _connection(source, target)
        FreshnessSettings.objects.filter(connection=connection).update(skew_seconds=0)
        got, state = _figures(_criterion(connection))
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    # Decided before NOW - 300 s: 7 too. 5 and 6 are older versions.
    assert got == {
        "total": 22,
        "good": 3,  # 1, 3, 4
        "late_now": 18,
        "pending": 0,
        "unmeasured": 1,
        "lag_p50": 299.999999,
        "lag_p95": 300.000001,
        "lag_p99": 300.000001,
        "lag_max": 300.000001,
    }
    assert [e["key"]["id"] for e in state.late_examples] == [5, 6, 7, 8, *range(10, 16)]
