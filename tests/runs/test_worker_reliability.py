"""Validation runs through a real Celery worker over real Redis.

A worker subprocess (`celery -A aethon worker`) executes the runs against the test database,
so these tests need PostgreSQL (a SQLite test database lives in this process's memory) and
Redis; Redis missing is skipped locally and fails in CI (AETHON_REQUIRE_SERVICES=1).
Each worker consumes its own queue, so no other worker on the same Redis interferes.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import connection as db
from django.urls import reverse
from django.utils import timezone

from aethon.celery import app
from planner.models import RunPartition, RunStage, SystemEndpoint, ValidationRun
from planner.runs import service as validation
from planner.runs.tasks import reap_stale_runs, run_validation
from tests.conftest import client_for, skip_or_fail
from tests.connectors import Reply, SlowServer, serve
from tests.factories import (
    ConnectionFactory,
    FieldMappingFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
    configured,
    id_and_email_mapping,
)

ROOT = Path(__file__).resolve().parents[2]
KEY = Fernet.generate_key().decode()
REDIS_URL = os.environ.get("CELERY_BROKER_URL", "")
if not REDIS_URL.startswith("redis://"):
    REDIS_URL = "redis://127.0.0.1:6379/14"
RECORDS = 1500
PAGE = 50


def redis_reachable() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {REDIS_URL} is unreachable: {exc}")


def shared_database_url() -> str:
    if db.vendor != "postgresql":
        pytest.skip(
            "a worker process cannot share this SQLite test database (it lives in memory):"
            " run with DATABASE_URL=postgres://…"
        )
    s = db.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Worker:
    def __init__(self, queue: str, log: Path, env: dict[str, str]) -> None:
        self.queue, self.log = queue, log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "aethon",
                "worker",
                "-Q",
                queue,
                "--pool=prefork",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=INFO",
                "-n",
                f"{queue}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killable as a whole
        )
        self.wait_for(" ready.", timeout=60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30, after: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output()[after:]:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited:\n{self.output()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"worker never logged {text!r}:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def same_settings_as_the_worker(settings, media_root):
    settings.MEDIA_ROOT = media_root
    settings.AETHON_SECRET_KEYS = [KEY]


def use_broker(monkeypatch, url: str) -> None:
    # Celery reads CELERY_BROKER_URL from the environment before its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setitem(app.conf, "broker_url", url)


@pytest.fixture
def broker(transactional_db, monkeypatch):
    """Publish to Redis, on a queue of our own."""
    redis_reachable()
    queue = f"aethon-test-{uuid.uuid4().hex[:8]}"
    use_broker(monkeypatch, REDIS_URL)
    monkeypatch.setitem(app.conf, "task_default_queue", queue)
    return queue


@pytest.fixture
def start_worker(broker, tmp_path, media_root):
    database_url = shared_database_url()
    workers: list[Worker] = []

    def start(**extra: str) -> Worker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AETHON_")}
        env.update(
            DATABASE_URL=database_url,
            CELERY_BROKER_URL=REDIS_URL,
            AETHON_MEDIA_ROOT=str(media_root),
            AETHON_SECRET_KEYS=KEY,
            AETHON_OUTBOUND_ALLOW_HOSTS="127.0.0.1",
            AETHON_READ_TIMEOUT="1",
            AETHON_RUN_HEARTBEAT_SECONDS="0.5",
        )
        env.update(extra)
        worker = Worker(broker, tmp_path / f"worker{len(workers)}.log", env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_until(check, timeout: float = 30, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def run_of(pk: int) -> ValidationRun:
    return ValidationRun.objects.get(pk=pk)


def paged_api(delay: float):
    """A cursor-paginated API of RECORDS customers, `delay` seconds per page."""

    def handle(req):
        start = int(req.query.get("cursor", 0))
        items = [
            {"id": i, "email": f"c{i}@example.com"}
            for i in range(start, min(start + PAGE, RECORDS))
        ]
        nxt = start + PAGE if start + PAGE < RECORDS else None
        return Reply(body={"items": items, "next": nxt}, delay=delay)

    return handle


def build(source_url: str, target_csv: str | None = None):
    project = ProjectFactory()
    source = SystemFactory(project=project, name="CRM API")
    target = SystemFactory(project=project, name="Billing")
    SystemEndpoint.objects.create(
        project=project,
        system=source,
        kind="http_json",
        key_fields="id",
        dataset="/customers",
        config={
            "base_url": source_url,
            "pagination": "cursor",
            "cursor_path": "next",
            "records_path": "$.items",
            "page_size": PAGE,
        },
    )
    csv = target_csv or "id,email\n" + "".join(f"{i},c{i}@example.com\n" for i in range(RECORDS))
    SystemEndpointFactory(system=target, csv=csv)
    connection = ConnectionFactory(project=project, source=source, target=target)
    id_and_email_mapping(connection)
    return connection


def test_a_run_goes_through_the_worker_and_a_repeated_delivery_adds_nothing(start_worker):
    worker = start_worker()
    with serve(paged_api(0)) as api:
        connection = build(api.url)
        run = validation.start_validation_run(connection, connection.project.owner)
        assert run.celery_task_id
        run = wait_until(lambda: (r := run_of(run.pk)).status in ("passed", "failed") and r)
    assert run.status == "passed", (run.error, worker.output()[-2000:])
    assert run.records_done == 2 * RECORDS and run.attempt == 1
    stages = {s.name: (s.status, s.figures) for s in run.stages.all()}
    # The same task delivered again (as after a lost ack): the worker leaves the run alone.
    mark = len(worker.output())
    again = run_validation.apply_async(args=[run.pk])
    worker.wait_for(
        f"Task planner.validation_tasks.run_validation[{again.id}] succeeded", after=mark
    )
    after = run_of(run.pk)
    assert (after.status, after.attempt, after.finished_at) == ("passed", 1, run.finished_at)
    assert after.stages.count() == 4
    assert {s.name: (s.status, s.figures) for s in after.stages.all()} == stages


def test_a_killed_pool_process_leaves_the_run_failed_with_the_reason(start_worker):
    worker = start_worker()
    with serve(paged_api(0.15)) as api:
        connection = build(api.url)
        run = validation.start_validation_run(connection, None)
        running = wait_until(
            lambda: (r := run_of(run.pk)).status == "running" and r.records_done >= 200 and r
        )
        assert running.stage == "mapping"
        pid = int(running.worker.rpartition(":")[2])
        assert pid != worker.proc.pid  # the pool process, not the worker's main process
        os.kill(pid, signal.SIGKILL)
        # Celery requeues the task (acks_late + reject_on_worker_lost); the redelivery finds
        # the attempt's process gone and fails the run instead of starting it again.
        failed = wait_until(lambda: (r := run_of(run.pk)).status == "failed" and r, timeout=60)
    assert "stopped during the mapping validation stage" in failed.error
    assert failed.attempt == 1  # not rerun
    assert failed.stages.count() == 4
    assert failed.stages.get(name="mapping").status == RunStage.Status.FAILED
    assert failed.stages.get(name="reconciliation").status == RunStage.Status.SKIPPED
    assert "WorkerLostError" in worker.output() or "SIGKILL" in worker.output()
    assert worker.proc.poll() is None  # the worker itself carries on


def test_a_killed_worker_is_reaped_from_its_stale_heartbeat(start_worker):
    first = start_worker()
    with serve(paged_api(0.15)) as api:
        connection = build(api.url)
        run = validation.start_validation_run(connection, None)
        wait_until(lambda: run_of(run.pk).records_done >= 100)
        first.stop()  # SIGKILL to the whole worker: main process and pool alike
    time.sleep(1)
    assert run_of(run.pk).status == "running"  # nobody is left to say otherwise
    # The reaper (a beat task) runs on another worker once the heartbeat is stale.
    second = start_worker(AETHON_RUN_STALE_SECONDS="2")
    time.sleep(2.5)
    reap_stale_runs.apply_async()
    failed = wait_until(lambda: (r := run_of(run.pk)).status == "failed" and r)
    assert "stopped during the mapping validation stage" in failed.error
    assert "last heartbeat" in failed.error
    assert failed.stages.count() == 4
    assert second.proc.poll() is None


def test_the_next_worker_to_start_fails_the_run_of_a_killed_worker_without_beat(start_worker):
    first = start_worker()
    with serve(paged_api(0.15)) as api:
        connection = build(api.url)
        run = validation.start_validation_run(connection, None)
        wait_until(lambda: run_of(run.pk).records_done >= 100)
        first.stop()  # SIGKILL to the whole worker: main process and pool alike
    time.sleep(2.5)  # the heartbeat is now older than AETHON_RUN_STALE_SECONDS below
    assert run_of(run.pk).status == "running"
    # No beat and no reap task: starting the next worker is enough.
    second = start_worker(AETHON_RUN_STALE_SECONDS="2")
    failed = wait_until(lambda: (r := run_of(run.pk)).status == "failed" and r, timeout=10)
    assert "stopped during the mapping validation stage" in failed.error
    assert "last heartbeat" in failed.error
    assert failed.stages.get(name="mapping").status == RunStage.Status.FAILED
    assert second.proc.poll() is None


def test_a_run_killed_just_before_a_worker_starts_is_failed_once_its_heartbeat_is_stale(
    start_worker,
):
    with serve(paged_api(0)) as api:
        connection = build(api.url)
    run = validation.start_validation_run(connection, None)
    # As a worker killed a moment ago leaves it: running, with a fresh heartbeat.
    ValidationRun.objects.filter(pk=run.pk).update(
        status="running",
        attempt=1,
        stage="mapping",
        worker="gone:1",
        heartbeat_at=timezone.now(),
    )
    start_worker(AETHON_RUN_STALE_SECONDS="15")
    assert run_of(run.pk).status == "running"  # not stale yet when the worker came up
    failed = wait_until(lambda: (r := run_of(run.pk)).status == "failed" and r, timeout=40)
    assert "stopped during the mapping validation stage" in failed.error
    stale_for = (failed.finished_at - failed.heartbeat_at).total_seconds()
    assert 15 <= stale_for < 30


def test_cancel_stops_a_run_stuck_in_a_slow_download_within_seconds(start_worker):
    start_worker()
    with SlowServer("trickle") as slow:  # a byte every 0.5 s: never trips the read timeout
        connection = build(slow.url)
        run = validation.start_validation_run(connection, None)
        wait_until(lambda: slow.requests >= 1 and run_of(run.pk).status == "running")
        time.sleep(1)
        client = client_for(connection.project.owner)
        asked = time.monotonic()
        client.post(reverse("planner:run_cancel", args=[connection.project_id, run.pk]))
        cancelled = wait_until(lambda: (r := run_of(run.pk)).status == "cancelled" and r)
        took = time.monotonic() - asked
    assert took < 5, f"stopped {took:.1f}s after the cancel"
    assert cancelled.error == "Cancelled."
    assert {s.status for s in cancelled.stages.all()} == {"skipped"}


def test_a_system_that_times_out_fails_its_stage_and_the_other_reports(start_worker):
    start_worker()
    with serve(lambda req: Reply(body={"items": []}, delay=3)) as slow:
        connection = build(slow.url)
        run = validation.start_validation_run(connection, None)
        run = wait_until(lambda: (r := run_of(run.pk)).status == "failed" and r, timeout=60)
    conn = run.stages.get(name="connectivity")
    source, target = conn.figures["sides"]
    assert not source["ok"] and "did not answer within 1s" in source["error"]
    assert target["ok"] and target["fields"] == 2
    assert run.stages.get(name="mapping").status == "skipped"
    assert run.stages.get(name="reconciliation").status == "skipped"


def test_cancel_stops_a_running_run(start_worker):
    start_worker()
    with serve(paged_api(0.15)) as api:
        connection = build(api.url)
        run = validation.start_validation_run(connection, None)
        wait_until(lambda: run_of(run.pk).records_done >= 100)
        client = client_for(connection.project.owner)
        client.post(reverse("planner:run_cancel", args=[connection.project_id, run.pk]))
        cancelled = wait_until(lambda: (r := run_of(run.pk)).status == "cancelled" and r)
    assert cancelled.records_done < 2 * RECORDS
    assert cancelled.stages.get(name="reconciliation").status == "skipped"


@pytest.mark.django_db
def test_the_broker_being_down_gives_a_clear_message_not_a_500(monkeypatch):
    use_broker(monkeypatch, "redis://127.0.0.1:1/0")  # nothing listens on port 1
    project = ProjectFactory()
    connection = configured(ConnectionFactory(project=project))
    client = client_for(project.owner)
    started = time.monotonic()
    response = client.post(
        reverse("planner:run_start", args=[project.pk, connection.pk]),
        {"kind": "validation"},
        follow=True,
    )
    took = time.monotonic() - started
    assert response.status_code == 200
    run = ValidationRun.objects.get()
    assert run.status == "failed" and run.error == validation.QUEUE_UNREACHABLE
    assert "The task queue is unreachable" in response.content.decode()
    assert {s.status for s in run.stages.all()} == {"skipped"}
    assert took < 15
    # A new attempt is possible once the broker is back: the failed run does not block it.
    monkeypatch.setattr(validation, "dispatch", lambda r: None)
    assert validation.start_validation_run(connection, None).pk != run.pk


PART_ROWS = 12_000


@pytest.fixture
def slow_tables(transactional_db):
    """A source table and a target view that takes about a millisecond a row (pg_sleep), so
    a key range is still being compared when its worker is killed."""
    shared_database_url()  # PostgreSQL only: skips on SQLite before any of its SQL
    with db.cursor() as cur:
        cur.execute(
            "DROP VIEW IF EXISTS part_tgt; DROP TABLE IF EXISTS part_src, part_tgt_rows;"
            " CREATE TABLE part_src (id integer, name text);"
            " CREATE TABLE part_tgt_rows (id integer, name text);"
            f" INSERT INTO part_src SELECT i, 'n' || i FROM generate_series(1, {PART_ROWS}) i;"
            " INSERT INTO part_src VALUES (NULL, 'no key'), (77, 'n77');"
            " INSERT INTO part_tgt_rows SELECT i, CASE WHEN i % 1000 = 5 THEN 'changed'"
            f" ELSE 'n' || i END FROM generate_series(1, {PART_ROWS}) i WHERE i % 500 <> 7;"
        )
        # A permanent function: the worker's own sessions read the view.
        cur.execute(
            "CREATE OR REPLACE FUNCTION aethon_test_slow() RETURNS boolean LANGUAGE sql"
            " VOLATILE AS 'SELECT true FROM pg_sleep(0.001)';"
            " CREATE VIEW part_tgt AS SELECT id, name FROM part_tgt_rows WHERE aethon_test_slow();"
        )
    yield
    with db.cursor() as cur:
        cur.execute(
            "DROP VIEW IF EXISTS part_tgt; DROP TABLE IF EXISTS part_src, part_tgt_rows;"
            " DROP FUNCTION IF EXISTS aethon_test_slow();"
        )


def sql_connection():
    s = db.settings_dict
    config = {
        "host": s["HOST"] or "127.0.0.1",
        "port": int(s["PORT"] or 5432),
        "database": s["NAME"],
        "user": s["USER"] or "postgres",
        "sslmode": "disable",
    }
    project = ProjectFactory()
    systems = []
    for name, table in (("CRM", "part_src"), ("Billing", "part_tgt")):
        system = SystemFactory(project=project, name=name)
        SystemEndpoint.objects.create(
            project=project,
            system=system,
            kind=SystemEndpoint.Kind.POSTGRES,
            config=config,
            dataset=table,
            key_fields="id",
        )
        systems.append(system)
    connection = ConnectionFactory(project=project, source=systems[0], target=systems[1])
    for i, field in enumerate(("id", "name")):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=field,
            target_field=field,
            source_type="integer" if field == "id" else "string",
            target_type="integer" if field == "id" else "string",
            rule="identity",
            null_rule="skip",
        )
    return connection


def test_a_killed_partition_is_compared_again_and_the_run_finishes_correctly(
    slow_tables, start_worker
):
    # (slow_tables first: its tables are dropped after the workers are stopped.)
    settings = {
        "AETHON_RUN_PARTITION_ROWS": "3001",
        "AETHON_RUN_CHUNK_ROWS": "500",
        "AETHON_READ_TIMEOUT": "60",  # the slow view's sort takes seconds before a first row
        # Both sides live in the test database: read them, as for two databases, instead of
        # joining them there in one statement (which is never split).
        "AETHON_RUN_JOIN": "0",
    }
    workers = [start_worker(**settings), start_worker(**settings)]
    connection = sql_connection()
    run = validation.start_validation_run(connection, None)
    running = wait_until(
        lambda: RunPartition.objects.filter(run_id=run.pk, status="running").first(), 60
    )
    time.sleep(0.5)  # well inside the range: its target rows take about 3 s to read
    running.refresh_from_db()
    assert running.status == "running" and running.attempt == 1
    pid = int(running.worker.rpartition(":")[2])
    assert pid not in [w.proc.pid for w in workers]  # a pool process, not a worker
    os.kill(pid, signal.SIGKILL)
    done = wait_until(lambda: (r := run_of(run.pk)).status in ("passed", "failed") and r, 120)
    logs = "".join(w.output()[-3000:] for w in workers)
    assert done.status == "failed", (done.error, logs)  # differences, not a lost run
    assert done.error.startswith("Reconciliation: "), done.error
    parts = list(RunPartition.objects.filter(run_id=run.pk).order_by("index"))
    assert len(parts) == 4  # 12,001 rows with a key, at most 3,001 a range
    assert all(p.status == "done" for p in parts)
    again = next(p for p in parts if p.pk == running.pk)
    assert again.attempt == 2 and f":{pid} stopped" in again.error
    assert sum(p.attempt for p in parts) == 5
    figures = done.stages.get(name="reconciliation").figures
    missing = PART_ROWS // 500  # every id ending in 007 or 507
    assert figures["source_count"] == PART_ROWS + 2
    assert figures["null_keys_source"] == 1 and figures["duplicate_rows_source"] == 1
    assert figures["missing_in_target_count"] == missing
    assert figures["mismatch_counts"] == {"name": PART_ROWS // 1000}
    assert figures["reading"]["partitions"] == {"count": 4, "attempts": 5}
    assert "WorkerLostError" in logs or "SIGKILL" in logs
