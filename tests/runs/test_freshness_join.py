"""Freshness measured by a join inside PostgreSQL gives exactly what reading both tables gives.

The same criterion is measured twice on the same two tables of one database: once joined in
the database (only late and uncertain records are sent whole, the rest as counts of alike
records) and once reading every record in key order (``AETHON_RUN_JOIN`` off). Every figure
(counts, percentiles, share within target, late keys, examples, the oldest late record) must
be equal, over random tables with late records, clock skew, NULL times and keys, compound and
text keys, repeated keys (which the join refuses, saying why) and a filter to the records
changed since the last measurement.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from psycopg import sql

from planner.metrics import freshness as freshness_metrics
from planner.models import FreshnessSettings, MetricKey, SuccessCriterion, SystemEndpoint
from planner.runs import freshness
from tests.factories import (
    ConnectionFactory,
    CriterionFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)
from tests.runs.conftest import PG, map_same_names

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
EMAILS = ["a@x.org", " A@x.org", "b@x.org", "B@X.ORG ", "", None]
RULES = ["identity", "trim | lower", "upper", "trim"]
TEXT_KEYS = ["a", "A", "b", "é", "ab", "Z", "10", "9"]
TIME_TYPES = ["timestamptz", "timestamp", "date"]


def _endpoint(dbname: str, table: str) -> dict:
    return {
        "kind": SystemEndpoint.Kind.POSTGRES,
        "config": {k: PG[k] for k in ("host", "port", "user", "sslmode")} | {"database": dbname},
        "dataset": table,
        "upload": "",
        "upload_name": "",
    }


def _create(dbname: str, table: str, columns: dict[str, str], rows: list[tuple], key, primary):
    cols = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns.items()]
    if primary:
        names = sql.SQL(", ").join(map(sql.Identifier, key))
        cols.append(sql.SQL("PRIMARY KEY ({})").format(names))
    with psycopg.connect(**PG, dbname=dbname, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), sql.SQL(", ").join(cols))
        )
        if rows:
            with conn.cursor() as cur:
                marks = sql.SQL(", ").join(sql.Placeholder() * len(columns))
                cur.executemany(
                    sql.SQL("INSERT INTO {} VALUES ({})").format(sql.Identifier(table), marks),
                    rows,
                )


def _criterion(dbname, scenario) -> SuccessCriterion:
    tag = uuid.uuid4().hex[:8]
    key, text_key = scenario["key"], scenario["text_key"]
    key_type = "text" if text_key else "integer"
    s_cols = {k: key_type if k == "k" else "integer" for k in key}
    s_cols |= {"email": "text", "updated_at": scenario["s_type"]}
    t_cols = {k: key_type if k == "k" else "integer" for k in key}
    t_cols |= {"email": "text", "synced_at": scenario["t_type"]}
    _create(dbname, f"s_{tag}", s_cols, scenario["source"], key, scenario["unique"])
    _create(dbname, f"t_{tag}", t_cols, scenario["target"], key, scenario["unique"])
    project = ProjectFactory()
    source = SystemFactory(project=project, name="CRM")
    target = SystemFactory(project=project, name="Marketing")
    SystemEndpointFactory(system=source, key_fields=",".join(key), **_endpoint(dbname, f"s_{tag}"))
    SystemEndpointFactory(system=target, key_fields=",".join(key), **_endpoint(dbname, f"t_{tag}"))
    connection = ConnectionFactory(project=project, source=source, target=target)
    mapped = [(k, "string" if k == "k" and text_key else "integer", "identity") for k in key]
    mapped.append(("email", "string", scenario["rule"]))
    map_same_names(connection, mapped)
    FreshnessSettings.objects.create(
        project=project,
        connection=connection,
        source_time_field="updated_at",
        target_time_field="synced_at",
        skew_seconds=scenario["skew"],
        overlap_seconds=scenario["overlap"],
        basis=scenario["basis"],
    )
    made = CriterionFactory(
        project=project,
        metric="contacts in the marketing tool",
        metric_key=MetricKey.FRESHNESS,
        comparator=scenario["comparator"],
        target=scenario["target_minutes"],
        unit="minutes",
        freshness_connection=connection,
        window_value=None,
    )
    return SuccessCriterion.objects.get(pk=made.pk)


def _value(when: datetime | None, sql_type: str):
    if when is None:
        return None
    if sql_type == "timestamp":
        return when.replace(tzinfo=None)
    if sql_type == "date":
        return when.date()
    return when


@st.composite
def scenarios(draw):
    compound = draw(st.booleans())
    text_key = draw(st.booleans())
    key = ["k", "n"] if compound else ["k"]
    unique = draw(st.booleans())
    keys = st.sampled_from(TEXT_KEYS) if text_key else st.integers(0, 40 if unique else 8)
    if not unique:
        keys = keys | st.none()
    n = draw(st.integers(1, 25))
    s_type = draw(st.sampled_from(TIME_TYPES))
    t_type = draw(st.sampled_from(TIME_TYPES))
    seconds = st.integers(-3 * 3600, 0).map(lambda s: timedelta(seconds=s))
    micros = st.integers(0, 999_999).map(lambda u: timedelta(microseconds=u))
    source, target, seen = [], [], set()
    for _ in range(n):
        k = (draw(keys),) + ((draw(st.integers(0, 2)),) if compound else ())
        if unique and (k in seen or None in k):
            continue
        seen.add(k)
        changed = None if draw(st.integers(0, 9)) == 0 else NOW + draw(seconds) + draw(micros)
        email = draw(st.sampled_from(EMAILS))
        source.append((*k, email, _value(changed, s_type)))
        there = draw(st.sampled_from(["same", "same", "same", "changed", "absent"]))
        if there == "absent":
            continue
        lag = draw(st.integers(-90, 900)) if draw(st.booleans()) else draw(st.integers(0, 400))
        synced = (
            None
            if changed is None or draw(st.integers(0, 12)) == 0
            else changed + timedelta(seconds=lag) + draw(micros)
        )
        if changed is None and draw(st.booleans()):
            synced = NOW + draw(seconds)
        t_email = email if there == "same" else "old@x.org"
        if email is not None and draw(st.integers(0, 5)) == 0:
            t_email = email.strip().lower()  # what some of the rules make of it
        target.append((*k, t_email, _value(synced, t_type)))
    if not source:
        return None
    since = draw(st.none() | seconds.map(lambda d: NOW + d))
    late_from = None
    if since is not None and draw(st.booleans()):
        late_from = NOW + draw(seconds)
    return {
        "key": key,
        "text_key": text_key,
        "unique": unique,
        "s_type": s_type,
        "t_type": t_type,
        "source": source,
        "target": target,
        "rule": draw(st.sampled_from(RULES)),
        "skew": draw(st.sampled_from([0, 30, 120])),
        "overlap": draw(st.sampled_from([0, 300])),
        "basis": draw(st.sampled_from(list(FreshnessSettings.Basis.values))),
        "comparator": draw(st.sampled_from(["<=", "<"])),
        "target_minutes": draw(st.sampled_from([1, 5, 10])),
        "since": since,
        "late_from": late_from,
    }


def _both_ways(criterion, scenario, settings):
    outcomes = []
    for join in (True, False):
        settings.AETHON_RUN_JOIN = join
        result, reading = freshness.measure(
            criterion,
            now=NOW,
            counted_from=scenario["since"],
            late_from=scenario["late_from"],
        )
        outcomes.append((asdict(result), reading))
    return outcomes


@pytest.fixture
def allowed(settings):
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    return settings


@hsettings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenarios())
def test_a_joined_measurement_gives_the_read_paths_figures(db, pg_db, allowed, scenario):
    if scenario is None:
        event("no records")
        return
    criterion = _criterion(pg_db, scenario)
    (joined, how), (read, read_how) = _both_ways(criterion, scenario, allowed)
    assert read_how["mode"] != "joined"
    assert joined == read
    event(how["mode"])
    keys = [r[: len(scenario["key"])] for r in scenario["source"]]
    t_keys = [r[: len(scenario["key"])] for r in scenario["target"]]
    repeats = any(
        len(set(ks)) < len(ks)
        for ks in ([k for k in keys if None not in k], [k for k in t_keys if None not in k])
    )
    if repeats:
        assert how["mode"] != "joined"
        assert "repeats" in how["join_blocked"]
    else:
        assert how["mode"] == "joined", how.get("join_blocked")
        assert how["null_keys_source"] == read_how["null_keys_source"]
        assert how["source_rows"] == read_how["source_rows"]


def _known_tables(dbname: str, *, time_type: str = "timestamptz", rule: str = "identity"):
    """Key 1 on time, 2 late (never arrived), 3 late (still different), 4 pending, 5 reflected
    within the skew allowance; a 5-minute target, 30 s of skew."""
    hour_ago = NOW - timedelta(hours=1)
    s = timedelta(seconds=1)
    scenario = {
        "key": ["k"],
        "text_key": False,
        "unique": True,
        "s_type": time_type,
        "t_type": "timestamptz",
        "source": [
            (1, "a@x.org", hour_ago),
            (2, "b@x.org", hour_ago),
            (3, "c@x.org", NOW - 600 * s),
            (4, "d@x.org", NOW - 60 * s),
            (5, "e@x.org", hour_ago),
        ],
        "target": [
            (1, "a@x.org", hour_ago + 42 * s),
            (3, "old@x.org", NOW - 590 * s),
            (5, "e@x.org", hour_ago - 20 * s),
        ],
        "rule": rule,
        "skew": 30,
        "overlap": 300,
        "basis": FreshnessSettings.Basis.CHANGED,
        "comparator": "<=",
        "target_minutes": 5,
        "since": None,
        "late_from": None,
    }
    if time_type == "text":
        scenario["source"] = [(k, e, t.isoformat()) for k, e, t in scenario["source"]]
    return _criterion(dbname, scenario)


@pytest.mark.parametrize(
    ("rule", "sent"),
    [
        # SQL's equality is the comparison: late records come with their key and times.
        ("identity", (0, 2, 3)),
        # Compared through a rule: late records are read whole and judged by the engine.
        ("trim", (2, 0, 3)),
    ],
)
def test_only_late_records_leave_the_database(db, pg_db, allowed, rule, sent):
    result, reading = freshness.measure(
        _known_tables(pg_db, rule=rule), now=NOW, counted_from=None, late_from=None
    )
    assert (result.total, result.good, result.late_now, result.pending) == (4, 2, 2, 1)
    assert (result.lag_p50, result.lag_max) == (0.0, 42.0)
    assert [e["key"] for e in result.late_examples] == [{"k": 2}, {"k": 3}]
    assert result.late_examples[1] == {
        "key": {"k": 3},
        "source_changed": (NOW - timedelta(seconds=600)).isoformat(),
        "target_changed": (NOW - timedelta(seconds=590)).isoformat(),
        "late_by_seconds": 300.0,
    }
    assert reading["mode"] == "joined"
    # 2 and 3 are late (3's target differs); 1, 4 and 5 are sent as counts.
    got = (reading["rows_sent_whole"], reading["rows_sent_late"], reading["rows_counted_unread"])
    assert got == sent


def test_a_text_change_time_is_read_in_the_worker_and_says_why(db, pg_db, allowed):
    result, reading = freshness.measure(
        _known_tables(pg_db, time_type="text"), now=NOW, counted_from=None, late_from=None
    )
    assert (result.total, result.good, result.late_now) == (4, 2, 2)
    assert reading["mode"] == "streamed"
    assert reading["join_blocked"] == (
        "the source's change-time field updated_at is not a date or timestamp column,"
        " so its times are read in the worker"
    )


@pytest.mark.parametrize("past_the_head", [False, True])
@pytest.mark.parametrize(
    ("source_time", "target_time"),
    [
        # A target's time of infinity with the source's time (a lag) and without it (no
        # lag), and a source's time of minus infinity under a finite target's.
        ("hour_ago", "infinity"),
        (None, "infinity"),
        ("-infinity", "hour_ago"),
    ],
)
def test_an_infinite_change_time_ends_on_the_read_path(
    db, pg_db, allowed, settings, source_time, target_time, past_the_head
):
    """No worker reads 'infinity' as an instant: the join gives way, and the measurement
    fails as the read path's does, whether the record is among the first rows read for the
    column types or only in the join."""
    hour_ago = NOW - timedelta(hours=1)
    criterion = _known_tables(pg_db)
    tag = criterion.freshness_connection.source.endpoint.dataset.removeprefix("s_")
    key = 100_000 if past_the_head else 6
    with psycopg.connect(**PG, dbname=pg_db, autocommit=True) as conn:
        for table, value in ((f"s_{tag}", source_time), (f"t_{tag}", target_time)):
            name = sql.Identifier(table)
            if past_the_head:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} SELECT k, 'g@x.org', %s FROM generate_series(10, 500) k"
                    ).format(name),
                    [hour_ago],
                )
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, 'f@x.org', %s)").format(name),
                [key, hour_ago if value == "hour_ago" else value],
            )
    messages = []
    for join in (True, False):
        settings.AETHON_RUN_JOIN = join
        with pytest.raises(freshness.MeasurementFailed) as failed:
            freshness.measure(criterion, now=NOW, counted_from=None, late_from=None)
        messages.append(failed.value.message)
    assert messages[0] == messages[1]
    assert "infinity" in messages[0]


@pytest.mark.parametrize(("text_key", "compound"), [(False, False), (True, False), (True, True)])
def test_late_records_beyond_the_examples_are_counted_in_the_database(
    db, pg_db, allowed, settings, text_key, compound
):
    """Only the examples leave the database with their keys; every other late record is
    counted there, with the earliest change among them, and every figure is the read path's:
    the examples are the first late records by key, across both halves of an integer key."""
    hour = timedelta(hours=1)
    source, target = [], []
    for n in range(1, 41):
        # A compound key orders by its second part within the first: k000 before k001.
        key = (f"k{n // 8:03d}", n % 8) if compound else (f"k{n:03d}" if text_key else n,)
        changed = NOW - hour - timedelta(seconds=n, microseconds=n)
        source.append((*key, f"u{n}@x.org", changed))
        if n % 4 == 0:
            target.append((*key, f"u{n}@x.org", changed + timedelta(seconds=n)))
        elif n % 4 == 1:
            target.append((*key, "old@x.org", changed))  # still different: late
        # the rest never arrived: late
    scenario = {
        "key": ["k", "n"] if compound else ["k"],
        "text_key": text_key,
        "unique": True,
        "s_type": "timestamptz",
        "t_type": "timestamptz",
        "source": source,
        "target": target,
        "rule": "identity",
        "skew": 0,
        "overlap": 0,
        "basis": FreshnessSettings.Basis.CHANGED,
        "comparator": "<=",
        "target_minutes": 5,
        "since": None,
        "late_from": None,
    }
    criterion = _criterion(pg_db, scenario)
    (joined, how), (read, _) = _both_ways(criterion, scenario, settings)
    assert joined == read
    assert how["mode"] == "joined" and how["halves"] is not text_key
    late = [n for n in range(1, 41) if n % 4]
    assert joined["late_now"] == len(late) == 30
    first = late[: freshness_metrics.MAX_EXAMPLES]
    if compound:
        examples = [{"k": f"k{n // 8:03d}", "n": n % 8} for n in first]
    else:
        examples = [{"k": f"k{n:03d}" if text_key else n} for n in first]
    assert [e["key"] for e in joined["late_examples"]] == examples
    assert joined["oldest_late"] == NOW - hour - timedelta(seconds=39, microseconds=39)
    assert how["rows_sent_late"] < len(late)
    assert how["rows_sent_late"] + how["rows_counted_unread"] == 40
