"""Large runs split into key-range partitions give exactly the single-task result.

Partition tasks are executed in this process (in a shuffled order, as free workers would take
them); tests/runs/test_worker_reliability.py runs them through real Celery workers.
"""

import random
import sqlite3
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from planner.api.tokens import create_token
from planner.models import RunPartition, RunSchedule, SystemEndpoint, ValidationRun
from planner.runs import service as validation
from tests.conftest import client_for
from tests.factories import (
    ConnectionFactory,
    FieldMappingFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)

# Reading figures that describe how the work was cut, not what was found.
HOW_CUT = {
    "key_ranges",
    "peak_rows_held",
    "partitions",
    "ranges_checked",
    "ranges_equal",
    "ranges_read_unchecked",
    "ranges_fetched",
    "rows_skipped",
}


@pytest.fixture(autouse=True)
def small_runs(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.AETHON_RUN_CHUNK_ROWS = 9
    settings.AETHON_RUN_FETCH_ROWS = 0
    settings.AETHON_RUN_PARTITION_ROWS = 0


@pytest.fixture
def queue(monkeypatch):
    """What would be published: runs and partitions, executed here on demand."""
    sent: dict[str, list[int]] = {"runs": [], "partitions": []}
    monkeypatch.setattr(validation, "dispatch", lambda run: sent["runs"].append(run.pk))
    monkeypatch.setattr(
        validation, "dispatch_partition", lambda part: sent["partitions"].append(part.pk)
    )
    return sent


def sqlite_upload(table: str, columns: str, rows) -> ContentFile:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE {table} ({columns})")
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    conn.commit()
    data = conn.serialize()
    conn.close()
    return ContentFile(data, name=f"{table}.db")


def random_tables(seed: int, n: int = 160, pushable: bool = False):
    """Source and target with a compound (mixed-case text, integer) key: null key parts,
    duplicate keys, missing, extra and changed rows, values that break a rule. ``pushable``:
    the target keeps the status as text, so every rule compiles to SQL (push-down)."""
    rng = random.Random(seed)
    regions = ["north", "North", "NORTH", "south", "éast", "West", "west", "Zeta", "a"]
    source = []
    for _ in range(n):
        region = rng.choice(regions)
        key_id = rng.randrange(0, n // 3)
        if rng.random() < 0.05:
            region = None
        if rng.random() < 0.04:
            key_id = None
        name = rng.choice(["  Ada ", "Bob", "carla", "DAVE", "x" * 30, None])
        status = rng.choice(["active", "inactive", "gone"])
        source.append((region, key_id, name, status))
    target = []
    for region, key_id, name, status in source:
        roll = rng.random()
        if roll < 0.1:
            continue  # missing in target
        clean = name.strip().lower() if name else None
        active = status if pushable else {"active": 1, "inactive": 0}.get(status)
        if roll < 0.25:
            clean = (clean or "") + "!"  # changed
        target.append((region, key_id, clean, active))
    for _ in range(n // 10):
        target.append((rng.choice(regions), rng.randrange(n, 2 * n), "extra", "active"))
    rng.shuffle(source)
    rng.shuffle(target)
    return source, target


def build(seed: int, pushable: bool = False):
    kind = SystemEndpoint.Kind.SQLITE
    source_rows, target_rows = random_tables(seed, pushable=pushable)
    status = ("status", "status", "string", "string", "identity", None)
    if not pushable:
        status = ("status", "active", "string", "integer", "map(active=1, inactive=0)", None)
    project = ProjectFactory()
    source = SystemFactory(project=project, name="CRM")
    target = SystemFactory(project=project, name="Billing")
    SystemEndpointFactory(
        system=source,
        kind=kind,
        dataset="crm",
        key_fields="region, id",
        upload=sqlite_upload("crm", "region TEXT, id INTEGER, name TEXT, status TEXT", source_rows),
        upload_name="crm.db",
    )
    SystemEndpointFactory(
        system=target,
        kind=kind,
        dataset="billing",
        key_fields="region, id",
        upload=sqlite_upload(
            "billing",
            f"region TEXT, id INTEGER, name TEXT, {status[1]} {'TEXT' if pushable else 'INTEGER'}",
            target_rows,
        ),
        upload_name="billing.db",
    )
    connection = ConnectionFactory(project=project, source=source, target=target)
    rows = [
        ("region", "region", "string", "string", "identity", None),
        ("id", "id", "integer", "integer", "identity", None),
        ("name", "name", "string", "string", "trim | lower", 20),
        status,
    ]
    for i, (src, dst, st, tt, rule, max_length) in enumerate(rows):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=src,
            target_field=dst,
            source_type=st,
            target_type=tt,
            rule=rule,
            max_length=max_length,
            null_rule="skip",
        )
    return connection


def run_everything(queue, connection, seed: int = 0, **options) -> ValidationRun:
    """Start a run and execute it and every partition it queues, partitions shuffled."""
    run = validation.start_validation_run(connection, None, **options)
    validation.execute_run(run.pk, heartbeat=False)
    pending = list(queue["partitions"])
    random.Random(seed).shuffle(pending)
    for pk in pending:
        validation.execute_partition(pk, heartbeat=False)
    queue["partitions"].clear()
    return ValidationRun.objects.get(pk=run.pk)


def outcome(run: ValidationRun) -> dict:
    """Everything a person sees of a finished run, minus how the work was cut."""
    stages = {}
    for stage in run.stages.all():
        figures = dict(stage.figures)
        if stage.name == "connectivity":  # how fast each system answered, this time
            figures["sides"] = [
                {k: v for k, v in side.items() if k != "latency_ms"} for side in figures["sides"]
            ]
        if "reading" in figures:
            figures["reading"] = {k: v for k, v in figures["reading"].items() if k not in HOW_CUT}
        stages[stage.name] = (stage.status, figures, stage.examples, stage.error)
    differences = ""
    if run.differences_file:
        with run.differences_file.open("rb") as fh:
            differences = fh.read().decode()
    return {
        "status": run.status,
        "error": run.error,
        "summary": run.summary,
        "stages": stages,
        "differences": differences,
        "records_done": run.records_done,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("seed", "options", "fetch_rows"),
    [
        (1, {}, 0),
        (2, {}, 0),
        (3, {"sample_percent": 40}, 0),
        (4, {}, 6),
        (5, {}, 0),
    ],
)
def test_a_partitioned_run_gives_the_single_task_result(settings, queue, seed, options, fetch_rows):
    settings.AETHON_RUN_FETCH_ROWS = fetch_rows
    connection = build(seed, pushable=bool(fetch_rows))
    single = run_everything(queue, connection, **options)
    assert not single.partitions.exists()
    assert single.status in ("passed", "failed") and single.stages.count() == 4
    reading = single.stages.get(name="reconciliation").figures["reading"]
    assert reading["partitions"]["count"] == 1

    settings.AETHON_RUN_PARTITION_ROWS = 17
    split = run_everything(queue, connection, seed=seed, **options)
    parts = list(split.partitions.all())
    assert len(parts) >= 5, "the table should have been split"
    assert all(p.status == "done" and p.attempt == 1 for p in parts)
    assert outcome(split) == outcome(single)
    reading = split.stages.get(name="reconciliation").figures["reading"]
    assert reading["partitions"] == {"count": len(parts), "attempts": len(parts)}
    # The figures are not trivially equal: there is something to find in these tables.
    figures = split.stages.get(name="reconciliation").figures
    assert figures["null_keys_source"] and figures["duplicate_rows_source"]
    assert figures["extra_in_target_count"] and figures["mismatched_count"]
    assert split.stages.get(name="mapping").figures["violations"]
    if fetch_rows:
        assert reading["mode"] == "pushdown"
    # Every range's difference lists were merged and deleted.
    storage = ValidationRun._meta.get_field("differences_file").storage
    assert not [n for n in storage.listdir(f"runs/{split.project_id}")[1] if "-part-" in n]


@pytest.mark.django_db
def test_null_key_rows_and_duplicates_are_counted_once(settings, queue):
    settings.AETHON_RUN_PARTITION_ROWS = 10
    connection = build(7)
    run = run_everything(queue, connection)
    parts = list(run.partitions.all())
    assert [p.null_keys for p in parts] == [False] * (len(parts) - 1) + [True]
    # Consecutive ranges: each starts where the one before ends.
    assert parts[0].lo is None and parts[-1].hi is None
    assert all(a.hi == b.lo for a, b in zip(parts, parts[1:], strict=False))
    source_rows, _ = random_tables(7)
    nulls = sum(1 for r in source_rows if r[0] is None or r[1] is None)
    keyed = [(r[0], r[1]) for r in source_rows if r[0] is not None and r[1] is not None]
    figures = run.stages.get(name="reconciliation").figures
    assert figures["null_keys_source"] == nulls
    assert figures["source_count"] == len(source_rows)
    assert figures["duplicate_rows_source"] == len(keyed) - len(set(keyed))


@pytest.mark.django_db
def test_a_small_run_and_a_stop_after_n_run_stay_one_task(settings, queue):
    connection = build(8)
    settings.AETHON_RUN_PARTITION_ROWS = 10_000
    small = run_everything(queue, connection)
    assert not small.partitions.exists()
    why = small.stages.get(name="reconciliation").figures["reading"]["partitions"]["why"]
    assert "one task" in why and "10,000" in why
    settings.AETHON_RUN_PARTITION_ROWS = 17
    limited = run_everything(queue, connection, max_differences=5)
    assert not limited.partitions.exists()
    reading = limited.stages.get(name="reconciliation").figures["reading"]
    assert reading["stopped_early"]
    assert "stop after N differences" in reading["partitions"]["why"]
    settings.AETHON_RUN_PARTITION_ROWS = 0
    assert outcome(run_everything(queue, connection, max_differences=5)) == outcome(limited)


@pytest.mark.django_db
def test_cancel_stops_running_and_queued_partitions(
    settings, queue, monkeypatch, django_capture_on_commit_callbacks
):
    settings.AETHON_RUN_PARTITION_ROWS = 17
    connection = build(9)
    run = validation.start_validation_run(connection, None)
    validation.execute_run(run.pk, heartbeat=False)
    pending = list(queue["partitions"])
    assert len(pending) >= 5
    validation.execute_partition(pending[0], heartbeat=False)  # one range done before

    from planner.runs import streamed

    # The run loads its stages when it executes: the pass is replaced where it lives.
    real = streamed.streamed_validation

    def cancelled_midway(*args, on_rows, **kwargs):
        def rows_read(n):
            if not ValidationRun.objects.get(pk=run.pk).cancel_requested:
                # A person presses Cancel while this range is being compared.
                validation.cancel_run(ValidationRun.objects.get(pk=run.pk))
            on_rows(n)

        return real(*args, on_rows=rows_read, **kwargs)

    monkeypatch.setattr(streamed, "streamed_validation", cancelled_midway)
    with django_capture_on_commit_callbacks(execute=True):
        validation.execute_partition(pending[1], heartbeat=False)
    run.refresh_from_db()
    assert run.status == "cancelled" and run.error == "Cancelled."
    # The queued ranges arrive afterwards and do nothing.
    for pk in pending[2:]:
        assert validation.execute_partition(pk, heartbeat=False) is None
    parts = {p.pk: p for p in run.partitions.all()}
    assert parts[pending[0]].status == "done"
    assert parts[pending[1]].status == "stopped" and parts[pending[1]].attempt == 1
    assert all(parts[pk].status == "stopped" and parts[pk].attempt == 0 for pk in pending[2:])
    assert {s.status for s in run.stages.filter(name__in=["mapping", "reconciliation"])} == {
        "skipped"
    }
    storage = ValidationRun._meta.get_field("differences_file").storage
    assert not [n for n in storage.listdir(f"runs/{run.project_id}")[1] if "-part-" in n]


@pytest.mark.django_db
def test_cancel_with_every_partition_still_queued_ends_the_run_at_once(settings, queue):
    settings.AETHON_RUN_PARTITION_ROWS = 17
    run = validation.start_validation_run(build(10), None)
    validation.execute_run(run.pk, heartbeat=False)
    assert ValidationRun.objects.get(pk=run.pk).status == "running"
    run = validation.cancel_run(run)
    assert run.status == "cancelled"
    assert set(run.partitions.values_list("status", flat=True)) == {"stopped"}


def lose(part: RunPartition, worker: str = "gone:1", minutes: int = 10) -> None:
    """As a worker killed mid-range leaves it: running, its heartbeat old."""
    RunPartition.objects.filter(pk=part.pk).update(
        status="running",
        attempt=part.attempt + 1,
        worker=worker,
        heartbeat_at=timezone.now() - timedelta(minutes=minutes),
    )


@pytest.mark.django_db
def test_a_lost_partition_is_compared_again_and_the_run_finishes_correctly(settings, queue):
    connection = build(11)
    single = run_everything(queue, connection)
    settings.AETHON_RUN_PARTITION_ROWS = 17
    run = validation.start_validation_run(connection, None)
    validation.execute_run(run.pk, heartbeat=False)
    pending = list(queue["partitions"])
    queue["partitions"].clear()
    victim = RunPartition.objects.get(pk=pending[2])
    lose(victim)
    # Another start while the run is alive (other ranges beating) returns the same run.
    validation.execute_partition(pending[0], heartbeat=False)
    assert validation.start_validation_run(connection, None).pk == run.pk
    # The reaper queues the lost range again; its run is not failed.
    assert validation.reap_stale_runs() == 0
    victim.refresh_from_db()
    assert victim.status == "queued" and "gone:1 stopped" in victim.error
    assert queue["partitions"] == [victim.pk]
    for pk in pending[1:]:
        validation.execute_partition(pk, heartbeat=False)
    run.refresh_from_db()
    victim.refresh_from_db()
    assert victim.attempt == 2 and victim.status == "done"
    assert outcome(run) == outcome(single)


@pytest.mark.django_db
def test_a_redelivered_partition_whose_process_died_runs_again(settings, queue):
    settings.AETHON_RUN_PARTITION_ROWS = 17
    connection = build(12)
    run = validation.start_validation_run(connection, None)
    validation.execute_run(run.pk, heartbeat=False)
    pending = list(queue["partitions"])
    victim = RunPartition.objects.get(pk=pending[0])
    # Its pool process died a moment ago (heartbeat still fresh, pid gone): Celery redelivers.
    lose(victim, worker=f"{validation.socket.gethostname()}:999999999", minutes=0)
    for pk in pending:
        validation.execute_partition(pk, heartbeat=False)
    victim.refresh_from_db()
    assert victim.attempt == 2 and victim.status == "done"
    assert ValidationRun.objects.get(pk=run.pk).status in ("passed", "failed")
    assert not ValidationRun.objects.get(pk=run.pk).error.startswith("Partition")


@pytest.mark.django_db
def test_a_partition_lost_too_often_fails_the_run_with_the_reason(settings, queue):
    settings.AETHON_RUN_PARTITION_ROWS = 17
    settings.AETHON_RUN_PARTITION_ATTEMPTS = 2
    run = validation.start_validation_run(build(13), None)
    validation.execute_run(run.pk, heartbeat=False)
    victim = RunPartition.objects.get(pk=queue["partitions"][1])
    lose(victim)
    validation.reap_stale_runs()
    victim.refresh_from_db()
    assert victim.status == "queued"
    lose(victim)  # the second attempt is lost too
    validation.reap_stale_runs()
    run.refresh_from_db()
    assert run.status == "failed"
    total = run.partitions.count()
    assert run.error.startswith(f"Partition 2 of {total} (keys ")
    assert "lost 2 times" in run.error and "AETHON_RUN_PARTITION_ATTEMPTS" in run.error
    assert set(run.partitions.values_list("status", flat=True)) == {"stopped"}


@pytest.mark.django_db
def test_a_stalled_merge_is_taken_over(settings, queue, monkeypatch):
    connection = build(14)
    single = run_everything(queue, connection)
    settings.AETHON_RUN_PARTITION_ROWS = 17
    run = validation.start_validation_run(connection, None)
    validation.execute_run(run.pk, heartbeat=False)
    pending = list(queue["partitions"])
    queue["partitions"].clear()
    with monkeypatch.context() as patched:
        patched.setattr(validation, "_merge_run", lambda *a, **k: None)  # the merger dies
        for pk in pending:
            validation.execute_partition(pk, heartbeat=False)
    assert ValidationRun.objects.get(pk=run.pk).status == "running"
    ValidationRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=10), worker="gone:1"
    )
    validation.reap_stale_runs()
    assert queue["partitions"] == [pending[-1]]
    validation.execute_partition(pending[-1], heartbeat=False)
    assert outcome(ValidationRun.objects.get(pk=run.pk)) == outcome(single)


@pytest.mark.django_db
def test_the_run_page_and_the_api_show_each_partitions_progress(settings, queue):
    settings.AETHON_RUN_PARTITION_ROWS = 17
    connection = build(15)
    run = validation.start_validation_run(connection, None)
    validation.execute_run(run.pk, heartbeat=False)
    pending = list(queue["partitions"])
    validation.execute_partition(pending[0], heartbeat=False)
    project = connection.project
    client = client_for(project.owner)
    page = client.get(reverse("planner:run_progress", args=[project.pk, run.pk]))
    html = page.content.decode()
    assert f"Split into {len(pending)} key ranges" in html
    assert 'hx-trigger="every 1s"' in html  # still polled: ranges are queued
    first = RunPartition.objects.get(pk=pending[0])
    assert first.records_done > 0
    assert "keys below " in html and "and null keys" in html
    token = create_token(project.owner, "test")[1]
    api = Client().get(
        f"/api/projects/{project.pk}/runs/{run.pk}", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    body = api.json()
    assert body["status"] == "running" and body["records_done"] == first.records_done
    assert [p["status"] for p in body["partitions"]] == ["done"] + ["queued"] * (len(pending) - 1)
    assert body["partitions"][0]["records_done"] == first.records_done
    assert body["partitions"][-1]["keys"].endswith("and null keys")
    # Reading the page changed nothing.
    assert RunPartition.objects.get(pk=pending[0]).records_done == first.records_done


@pytest.mark.django_db
def test_a_partitioned_parallel_run_gives_the_single_task_result(settings, queue):
    connection = build(16)
    _, old_rows = random_tables(17)  # the old process's output: another target
    old = SystemFactory(project=connection.project, name="Old billing")
    SystemEndpointFactory(
        system=old,
        kind=SystemEndpoint.Kind.SQLITE,
        dataset="billing",
        key_fields="region, id",
        upload=sqlite_upload(
            "billing", "region TEXT, id INTEGER, name TEXT, active INTEGER", old_rows
        ),
        upload_name="old.db",
    )
    RunSchedule.objects.create(project=connection.project, connection=connection, baseline=old)
    single = run_everything(queue, connection, kind="parallel")
    assert single.stages.get(name="parallel").figures["mismatched_count"]
    settings.AETHON_RUN_PARTITION_ROWS = 17
    split = run_everything(queue, connection, seed=3, kind="parallel")
    assert split.partitions.count() >= 5
    assert outcome(split) == outcome(single)


@pytest.mark.django_db
def test_a_second_delivery_of_the_run_task_leaves_a_split_run_to_its_partitions(settings, queue):
    settings.AETHON_RUN_PARTITION_ROWS = 17
    run = validation.start_validation_run(build(18), None)
    validation.execute_run(run.pk, heartbeat=False)
    # The run task delivered again after its process died (the coordinator's pid is gone).
    dead = f"{validation.socket.gethostname()}:999999999"
    ValidationRun.objects.filter(pk=run.pk).update(worker=dead)
    assert validation.execute_run(run.pk, heartbeat=False) is None
    assert ValidationRun.objects.get(pk=run.pk).status == "running"
    for pk in queue["partitions"]:
        validation.execute_partition(pk, heartbeat=False)
    assert ValidationRun.objects.get(pk=run.pk).status in ("passed", "failed")
    assert not ValidationRun.objects.get(pk=run.pk).error.startswith("The worker")
