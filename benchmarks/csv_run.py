"""A validation run between two uploaded CSV (or NDJSON) files, the way a user's takes it.

    .venv/bin/python benchmarks/csv_run.py [--rows 1000000] [--db-url URL] [--chunk-rows 50000]
                                           [--format csv|ndjson]

1. Writes two CSV (``--format ndjson``: NDJSON) files of ``--rows`` rows in random key order
   (id + 6 columns; the target with 1% of the rows changed, 0.5% missing and 0.5% extra) and
   uploads each, through the ORM, as the file of a system with "CSV / JSON / XLSX file"
   connection settings.
2. Starts a real Celery worker (``celery -A aethon worker``, prefork, concurrency 1, a queue
   of its own on Redis) and records its idle RSS (parent and pool process).
3. Starts the run with ``POST /api/projects/…/runs`` and a bearer token, polls it until it is
   finished, and prints the wall time, the worker's peak RSS (VmHWM of the pool process that
   ran it), how the data was read (streamed through a sort on disk, or held whole, and why)
   and whether the run's missing / extra / changed keys are the generator's.

Exits non-zero when a key set differs or the run did not finish. Target (printed, not failed
on): worker peak RSS at most idle + 300 MB at 1 M rows, i.e. not the file's size again.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
import uuid
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_e2e import (  # noqa: E402
    DEFAULT_BROKER,
    DEFAULT_DB_URL,
    Worker,
    bench_settings,
    key_sets,
    load_average,
    mib,
    owned_project,
    proc_status,
)

FIELDS = ("name", "qty", "amount", "city", "active", "note")


def write_files(folder: Path, rows: int, fmt: str, seed: int = 11) -> dict[str, set[int]]:
    """Source and target files; returns the key sets a run must find."""
    import polars as pl

    rng = random.Random(seed)
    ids = list(range(1, rows + 1))
    missing = set(rng.sample(ids, rows // 200))
    rest = [i for i in ids if i not in missing]
    changed = set(rng.sample(rest, rows // 100))
    extra = set(range(rows + 1, rows + 1 + rows // 200))
    source = pl.DataFrame({"id": ids}).with_columns(
        pl.format("Name {}", pl.col("id")).alias("name"),
        (pl.col("id") % 97).alias("qty"),
        (pl.col("id") * 0.25).round(2).alias("amount"),
        pl.format("City {}", pl.col("id") % 500).alias("city"),
        (pl.col("id") % 3 == 0).alias("active"),
        pl.format('note, "quoted" {}', pl.col("id") % 7).alias("note"),
    )
    target_ids = pl.DataFrame({"id": sorted((set(ids) - missing) | extra)})
    is_extra = pl.col("id").is_in(list(extra))
    target = target_ids.join(source, on="id", how="left").with_columns(
        pl.when(is_extra)
        .then(pl.format("Extra {}", pl.col("id")))
        .when(pl.col("id").is_in(list(changed)))
        .then(pl.format("Changed {}", pl.col("id")))
        .otherwise(pl.col("name"))
        .alias("name"),
        pl.col("qty").fill_null(1),
        pl.col("amount").fill_null(1.0),
        pl.col("city").fill_null("X"),
        pl.col("active").fill_null(True),
        pl.col("note").fill_null("extra"),
    )
    for frame, label in ((source, "source"), (target, "target")):
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
        if fmt == "ndjson":
            shuffled.write_ndjson(folder / f"{label}.ndjson")
        else:
            shuffled.write_csv(folder / f"{label}.csv")
    return {"changed": changed, "missing": missing, "extra": extra}


def build(folder: Path, fmt: str):
    """User, token, project, two file systems with their uploads, a connection, its mapping."""
    from django.core.files import File

    from planner.models import Connection, FieldMapping, System, SystemEndpoint

    project, raw = owned_project("csv", "CSV run benchmark")
    systems = []
    for label in ("source", "target"):
        system = System.objects.create(project=project, name=f"{label} file")
        endpoint = SystemEndpoint(
            system=system,
            project=project,
            kind=SystemEndpoint.Kind.FILE,
            config={"infer_types": True},
            key_fields="id",
            upload_name=f"{label}.{fmt}",
        )
        with (folder / f"{label}.{fmt}").open("rb") as fh:
            endpoint.upload.save(f"{label}.{fmt}", File(fh), save=False)
        endpoint.save()
        systems.append(system)
    connection = Connection.objects.create(project=project, source=systems[0], target=systems[1])
    for i, field in enumerate(("id", *FIELDS)):
        FieldMapping.objects.create(
            project=project,
            connection=connection,
            position=i,
            source_field=field,
            target_field=field,
            rule="identity",
            null_rule="skip",
        )
    return project, connection, raw


def timed_run(client, headers, project, connection, worker: Worker, poll: float):
    """Start the run through the API and poll it to the end; the pool process's peak RSS is
    sampled while it runs (a pool process a task left above the memory ceiling is replaced
    when the task ends, and its peak with it)."""
    from planner.models import ValidationRun

    url = f"/api/projects/{project.pk}/connections/{connection.pk}/runs"
    start = time.perf_counter()
    reply = client.post(url, **headers)
    if reply.status_code != 202:
        raise SystemExit(f"start refused: {reply.status_code} {reply.content[:300]!r}")
    run_id, status = reply.json()["id"], reply.json()["status"]
    peak = 0
    while status in ("queued", "running"):
        time.sleep(poll)
        peak = max([peak, *(proc_status(p).get("VmHWM", 0) for p in worker.processes())])
        status = client.get(f"/api/projects/{project.pk}/runs/{run_id}", **headers).json()["status"]
    wall = time.perf_counter() - start
    return wall, peak, ValidationRun.objects.get(pk=run_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db-url", default=DEFAULT_DB_URL)
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--format", choices=("csv", "ndjson"), default="csv")
    args = parser.parse_args()
    names = (f"source.{args.format}", f"target.{args.format}")

    db_cfg, var_dir, env, _dsn = bench_settings(
        args.db_url,
        args.broker,
        "csv",
        AETHON_RUN_CHUNK_ROWS=str(args.chunk_rows),
        AETHON_FILE_MAX_ROWS=str(args.rows * 2),
        AETHON_MAX_FILE_BYTES=str(2 * 1024**3),
        AETHON_FILE_MAX_UNCOMPRESSED_BYTES=str(2 * 1024**3),
    )
    worker = None
    ok = True
    try:
        from pages import ensure_database, migrate

        ensure_database(args.db_url)
        migrate(env)
        started = time.perf_counter()
        expected = write_files(var_dir, args.rows, args.format)
        sizes = ", ".join(f"{(var_dir / n).stat().st_size / 1024**2:.0f} MB" for n in names)
        print(
            f"files: {args.rows:,} rows ({sizes}) written in {time.perf_counter() - started:.1f}s;"
            f" expected {len(expected['changed']):,} changed, {len(expected['missing']):,}"
            f" missing, {len(expected['extra']):,} extra"
        )
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
        settings.ALLOWED_HOSTS = ["testserver", *settings.ALLOWED_HOSTS]
        project, connection, raw = build(var_dir, args.format)
        for name in names:
            (var_dir / name).unlink()  # the run reads the uploads in storage
        dbs.close_all()
        worker = Worker(queue, env, var_dir / "worker.log", "csvbench")
        worker.wait_ready()
        idle = [mib(proc_status(p).get("VmRSS", 0)) for p in worker.processes()]
        print(
            "worker idle RSS: " + ", ".join(f"{v:.0f} MiB" for v in idle) + " (parent, pool),"
            f" {load_average()}"
        )
        client = Client()
        headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
        wall, peak, run = timed_run(client, headers, project, connection, worker, poll=0.2)
        rec = run.stages.get(name="reconciliation").figures
        reading = rec.get("reading", {})
        how = (
            f"streamed in chunks of {reading.get('chunk_rows'):,}"
            if reading.get("mode") == "streamed"
            else f"{reading.get('mode')}: {reading.get('reason')}"
        )
        print(
            f"run: {wall:.2f}s to '{run.status}', worker peak RSS {mib(peak):.0f} MiB"
            f" (idle pool {idle[-1]:.0f} MiB), {how},"
            f" {rec.get('source_count', 0):,} vs {rec.get('target_count', 0):,} rows,"
            f" {load_average()}"
        )
        if reading.get("mode") == "streamed":
            print(f"  peak rows held by the merge: {reading.get('peak_rows_held'):,}")
        growth = mib(peak) - idle[-1]
        print(
            f"worker growth {growth:.0f} MiB (target <= 300 MiB at 1 M rows:"
            f" {'met' if growth <= 300 else 'NOT met'})"
        )
        if run.status not in ("passed", "failed") or not rec:
            print(f"  run ended {run.status}: {run.error}")
            ok = False
        found = key_sets(run)
        for name in ("changed", "missing", "extra"):
            if found[name] != expected[name]:
                ok = False
                print(f"  {name}: run found {len(found[name]):,}, expected {len(expected[name]):,}")
    finally:
        if worker is not None:
            worker.stop()
        shutil.rmtree(var_dir, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
