"""Freshness over PostgreSQL tables the way a user triggers it, against a reconciliation run of
the same tables, in the same sitting.

    .venv/bin/python benchmarks/freshness.py [--rows 1000000] [--db-url URL]
                                             [--chunk-rows 50000] [--rounds 3]

1. Generates two PostgreSQL tables in this run (``fresh_src``: id, email, updated_at;
   ``fresh_dst``: id, email, synced_at) with known lags: 1 % of keys missing in the target,
   1 % with a different email (both late), the rest synced 0 to 399 s after the change (so
   about 75 % within a 5-minute target); every change at least an hour old. Walks both
   tables once by key, untimed, so the first timed measurement does not warm the cache for
   the others.
2. Through the ORM: a user with an API token, a project, two systems with PostgreSQL settings,
   a connection mapping id and email as they are, its freshness fields, and one criterion
   "within 5 minutes" on it per round.
3. ``--rounds`` times, each measurement with a real Celery worker of its own (prefork,
   concurrency 1, a Redis queue of its own, started afresh so its peak and its first-task
   costs are its own): "Measure now" on a criterion of its own (so every round counts the
   same records) with ``POST /api/projects/…/criteria/…/freshness/measure``, polled through
   ``GET …/freshness`` until the measurement is stored; and a validation run of the same
   connection (``POST …/runs``), polled to the end. The order alternates between rounds
   (freshness first, then the reconciliation first), so neither always profits from the
   database cache the other warmed.
4. Prints each measurement's wall time, the worker's peak RSS (VmHWM of its processes), the
   CPU seconds of the worker and of the database's backends; then the best and the median
   wall time of each kind and their ratios, and checks every point's good, total and late
   figures against the generator's.

Exits non-zero when a figure differs, a measurement did not finish, or a target is missed:
freshness no slower than the reconciliation (best against best and median against median)
and worker peak <= 300 MiB at 1 M keys. Wall times move with the load of a shared machine:
the load average is printed with each. Needs PostgreSQL and Redis (``--broker``).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_e2e import (  # noqa: E402
    BackendCpu,
    Worker,
    bench_settings,
    cpu_ticks,
    load_average,
    mib,
    owned_project,
    pg_config,
    proc_status,
)

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/aethon_bench"
DEFAULT_BROKER = "redis://127.0.0.1:6379/13"
TARGET_SECONDS = 300
PEAK_MIB = 300
POLL_SECONDS = 0.02


def generate(rows: int, now: datetime):
    """Source and target frames and the figures a measurement must find."""
    import polars as pl

    base = now - timedelta(hours=1)
    ids = pl.int_range(1, rows + 1, eager=True, dtype=pl.Int64).alias("id")
    src = pl.DataFrame(ids).with_columns(
        pl.format("user{}@example.com", pl.col("id")).alias("email"),
        (pl.lit(base) - pl.duration(seconds=pl.col("id") % 3600, microseconds=pl.col("id") % 997))
        .dt.cast_time_unit("us")
        .alias("updated_at"),
    )
    bucket = pl.col("id") % 100
    lag = pl.duration(seconds=pl.col("id") % 400)
    dst = src.filter(bucket != 0).select(
        "id",
        pl.when(bucket == 1).then(pl.lit("old@example.com")).otherwise("email").alias("email"),
        (pl.col("updated_at") + lag).alias("synced_at"),
    )
    reflected = src.filter((bucket != 0) & (bucket != 1))
    expected = {
        "total": rows,
        "good": reflected.filter(pl.col("id") % 400 <= TARGET_SECONDS).height,
        "late_now": rows - reflected.height,
    }
    return src, dst, expected


def load(dsn: str, db: str, src, dst) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{dsn} dbname=postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    with psycopg.connect(f"{dsn} dbname={db}", autocommit=True) as conn:
        for table, frame, column in (
            (("fresh_src"), src, "updated_at"),
            ("fresh_dst", dst, "synced_at"),
        ):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
            conn.execute(
                sql.SQL("CREATE UNLOGGED TABLE {} (id bigint, email text, {} timestamptz)").format(
                    sql.Identifier(table), sql.Identifier(column)
                )
            )
            buf = io.BytesIO()
            frame.write_csv(buf, include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.6f%z")
            copy = sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(sql.Identifier(table))
            with conn.cursor() as cur, cur.copy(copy) as out:
                view = buf.getbuffer()
                for i in range(0, len(view), 1 << 20):
                    out.write(view[i : i + (1 << 20)])
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(sql.Identifier(table))
            )
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        # Both kinds read the tables by their keys: one untimed walk of both indexes and
        # tables first, so that the first timed measurement does not read them into the
        # cache for every later one.
        conn.execute("SET enable_hashjoin = off")
        conn.execute(
            "SELECT COUNT(*) FROM fresh_src s LEFT JOIN fresh_dst t ON s.id = t.id"
            " WHERE s.email IS DISTINCT FROM t.email OR t.synced_at < s.updated_at"
        )


def build(db_cfg: dict):
    from planner.models import (
        Connection,
        FieldMapping,
        FreshnessSettings,
        System,
        SystemEndpoint,
    )

    project, raw = owned_project("fresh", "Freshness benchmark")
    config = pg_config(db_cfg)
    systems = []
    for table in ("fresh_src", "fresh_dst"):
        system = System.objects.create(project=project, name=table)
        SystemEndpoint.objects.create(
            system=system,
            project=project,
            kind=SystemEndpoint.Kind.POSTGRES,
            config=config,
            dataset=table,
            key_fields="id",
        )
        systems.append(system)
    connection = Connection.objects.create(project=project, source=systems[0], target=systems[1])
    for i, (field, kind) in enumerate((("id", "integer"), ("email", "string"))):
        FieldMapping.objects.create(
            project=project,
            connection=connection,
            position=i,
            source_field=field,
            target_field=field,
            source_type=kind,
            target_type=kind,
            rule="identity",
            null_rule="skip",
        )
    FreshnessSettings.objects.create(
        project=project,
        connection=connection,
        source_time_field="updated_at",
        target_time_field="synced_at",
    )
    return project, connection, raw


def new_criterion(project, connection):
    """A "within 5 minutes" criterion never measured: its first measurement counts every
    record, as the first "Measure now" of a new criterion does."""
    from planner.models import MetricKey, SuccessCriterion

    return SuccessCriterion.objects.create(
        project=project,
        metric="new contacts in the marketing tool",
        metric_key=MetricKey.FRESHNESS,
        comparator="<=",
        target=5,
        unit="minutes",
        attainment_pct=99.9,
        freshness_connection=connection,
    )


@dataclass
class Timing:
    kind: str
    wall: float
    peak_mib: float
    worker_cpu: float
    database_cpu: float
    body: dict


def timed(client, headers, kind, start_url, poll_url, done, worker, db_name) -> Timing:
    pool = worker.processes()
    before = sum(map(cpu_ticks, pool))
    with BackendCpu(db_name) as backends:
        start = time.perf_counter()
        reply = client.post(start_url, **headers)
        if reply.status_code != 202:
            raise SystemExit(f"start refused: {reply.status_code} {reply.content[:300]!r}")
        url = poll_url.format(run_id=reply.json().get("id"))
        while True:
            # A fine poll: the wall time is the user's wait, not a multiple of the poll.
            time.sleep(POLL_SECONDS)
            body = client.get(url, **headers).json()
            if done(body):
                break
        wall = time.perf_counter() - start
    worker_cpu = (sum(map(cpu_ticks, pool)) - before) / os.sysconf("SC_CLK_TCK")
    peak = max(proc_status(p).get("VmHWM", 0) for p in worker.processes())
    return Timing(kind, wall, mib(peak), worker_cpu, backends.seconds(), body)


def measured_once(criteria) -> bool:
    """Whether each criterion was measured once: a task delivered again (its worker stopped
    before acknowledging it) would run in the next worker, before that one's timed work."""
    from django.db.models import Count

    from planner.models import SliPoint

    points = dict(
        SliPoint.objects.filter(criterion__in=criteria)
        .values_list("criterion")
        .annotate(n=Count("pk"))
    )
    twice = {pk: n for pk, n in points.items() if n != 1}
    if twice or len(points) != len(criteria):
        print(f"  points per criterion {points}: a measurement ran twice or not at all")
        return False
    return True


def check_freshness(body: dict, expected: dict) -> bool:
    if body["last_error"]:
        print(f"  freshness failed: {body['last_error']}")
        return False
    latest = body["latest"]
    got = {k: latest[k] for k in ("total", "good", "late_now")}
    if got != expected:
        print(f"  freshness figures {got}, expected {expected}")
        return False
    return True


def summary(timings: list[Timing]) -> dict[str, tuple[float, float]]:
    """Best and median wall time of each kind, printed with the CPU seconds."""
    out = {}
    for kind in ("freshness", "reconciliation"):
        mine = [t for t in timings if t.kind == kind]
        walls = [t.wall for t in mine]
        best, median = min(walls), statistics.median(walls)
        out[kind] = (best, median)
        print(
            f"{kind:>15}: best {best:.2f}s, median {median:.2f}s wall over {len(mine)};"
            f" worker CPU median {statistics.median(t.worker_cpu for t in mine):.2f}s,"
            f" database CPU median {statistics.median(t.database_cpu for t in mine):.2f}s;"
            f" worker peak RSS at most {max(t.peak_mib for t in mine):.0f} MiB"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db-url", default=DEFAULT_DB_URL)
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each kind")
    args = parser.parse_args()

    db_cfg, var_dir, env, dsn = bench_settings(
        args.db_url, args.broker, "fresh", AETHON_RUN_CHUNK_ROWS=str(args.chunk_rows)
    )
    worker = None
    ok = True
    try:
        from pages import ensure_database, migrate

        ensure_database(args.db_url)
        migrate(env)
        start = time.perf_counter()
        src, dst, expected = generate(args.rows, datetime.now(UTC))
        load(dsn, db_cfg["NAME"], src, dst)
        del src, dst
        print(
            f"setup: {args.rows:,} keys generated and loaded in {time.perf_counter() - start:.1f}s"
        )
        print(f"expected: {expected}")
        os.environ.update(env)
        import django

        warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
        django.setup()
        from django.conf import settings
        from django.db import connections as dbs
        from django.test import Client

        from aethon.celery import app

        queue = f"aethon-bench-{uuid.uuid4().hex[:8]}"
        app.conf.task_default_queue = queue
        # Both measurements publish from this process: load its task registry before timing,
        # so the first does not pay for it alone.
        app.loader.import_default_modules()
        app.finalize()
        settings.ALLOWED_HOSTS = ["testserver", *settings.ALLOWED_HOSTS]
        project, connection, raw = build(db_cfg)
        criteria = [new_criterion(project, connection) for _ in range(args.rounds)]
        dbs.close_all()
        client, headers = Client(), {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
        api = f"/api/projects/{project.pk}"
        # This process polls both kinds: its first request of each page (its imports) is paid
        # before the timing.
        client.get(f"{api}/criteria/{criteria[0].pk}/freshness", **headers)
        client.get(f"{api}/runs/0", **headers)  # no such run: only the page loads
        reconciliation = (
            "reconciliation",
            f"{api}/connections/{connection.pk}/runs",
            api + "/runs/{run_id}",
            lambda b: b["status"] not in ("queued", "running"),
        )
        timings: list[Timing] = []
        for round_, criterion in enumerate(criteria, 1):
            freshness = (
                "freshness",
                f"{api}/criteria/{criterion.pk}/freshness/measure",
                f"{api}/criteria/{criterion.pk}/freshness",
                lambda b: b["measured_at"] is not None or bool(b["last_error"]),
            )
            kinds = (freshness, reconciliation) if round_ % 2 else (reconciliation, freshness)
            for kind, start_url, poll_url, done in kinds:
                worker = Worker(queue, env, var_dir / f"{kind}-{round_}.log", f"fresh-{kind}")
                worker.wait_ready()
                t = timed(client, headers, kind, start_url, poll_url, done, worker, db_cfg["NAME"])
                worker.stop()
                worker = None
                timings.append(t)
                print(
                    f"round {round_} {kind:>15}: {t.wall:.2f}s wall, worker CPU"
                    f" {t.worker_cpu:.2f}s, database CPU {t.database_cpu:.2f}s, worker peak"
                    f" RSS {t.peak_mib:.0f} MiB, {load_average()}"
                )
                if kind == "freshness":
                    ok = check_freshness(t.body, expected) and ok
                    print(f"  of which measuring in the worker: {t.body['seconds']}s")
                elif t.body["status"] not in ("passed", "failed"):
                    print(f"  reconciliation ended {t.body['status']}")
                    ok = False
        ok = measured_once(criteria) and ok
        latest = next(t.body["latest"] for t in timings if t.kind == "freshness")
        print(
            f"freshness figures: {{'total': {latest['total']}, 'good': {latest['good']},"
            f" 'late_now': {latest['late_now']}}}, p50/p95/p99/max {latest['lag_p50']}/"
            f"{latest['lag_p95']}/{latest['lag_p99']}/{latest['lag_max']} s"
        )
        walls = summary(timings)
        (f_best, f_median), (r_best, r_median) = walls["freshness"], walls["reconciliation"]
        ratios = (f_best / r_best, f_median / r_median)
        met = max(ratios) <= 1.0
        print(
            f"ratio freshness / reconciliation: best {ratios[0]:.2f}, median {ratios[1]:.2f}"
            f" (target <= 1.0: {'met' if met else 'MISSED'})"
        )
        peak = max(t.peak_mib for t in timings)
        print(
            f"worker peak RSS {peak:.0f} MiB (target <= {PEAK_MIB} MiB:"
            f" {'met' if peak <= PEAK_MIB else 'MISSED'})"
        )
        ok = ok and met and peak <= PEAK_MIB
    finally:
        if worker is not None:
            worker.stop()
        shutil.rmtree(var_dir, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
