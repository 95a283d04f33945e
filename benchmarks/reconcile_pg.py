"""Benchmark reconcile_postgres against reladiff on two PostgreSQL tables.

    .venv/bin/python benchmarks/reconcile_pg.py [--rows 1000000] [--dsn "host=... user=..."]

Builds ``bench_a`` and ``bench_b`` (id + 10 columns) in database ``aethon_bench`` with
COPY; the target has 1% of rows changed, 0.5% missing and 0.5% extra. Both tools diff
the same tables in the same run, the key sets are compared (PASS/FAIL) and both times
are printed. Tables are reused when they already hold the requested row count
(``--rebuild`` forces a fresh load). Needs ``pip install reladiff psycopg2-binary``.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import polars as pl
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.runs.reconcile import reconcile_postgres  # noqa: E402

COLUMNS = ["name", "qty", "amount", "ratio", "created", "day", "active", "city", "score", "note"]
DDL = """CREATE UNLOGGED TABLE {} (id bigint, name text, qty int, amount numeric(12,2),
    ratio float8, created timestamp, day date, active boolean, city text, score int, note text)"""


def generate(rows: int) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, set[int]]]:
    """Source frame, target frame and the expected key sets (changed/missing/extra)."""
    ids = pl.int_range(1, rows + 1, eager=True, dtype=pl.Int64).alias("id")
    a = pl.DataFrame(ids).with_columns(
        (pl.lit("customer ") + pl.col("id").cast(pl.String)).alias("name"),
        (pl.col("id") % 97).cast(pl.Int32).alias("qty"),
        ((pl.col("id") % 100_000) / 100).cast(pl.Decimal(12, 2)).alias("amount"),
        (pl.col("id") / 7).alias("ratio"),
        (pl.datetime(2024, 1, 1) + pl.duration(seconds=pl.col("id"))).alias("created"),
        (pl.date(2020, 1, 1) + pl.duration(days=pl.col("id") % 2000)).alias("day"),
        (pl.col("id") % 3 == 0).alias("active"),
        pl.format("city-{}", pl.col("id") % 500).alias("city"),
        (pl.col("id") * 31 % 1000).cast(pl.Int32).alias("score"),
        pl.when(pl.col("id") % 11 == 0).then(None).otherwise(pl.lit("n")).alias("note"),
    )
    bucket = pl.col("id").hash(seed=42) % 200
    changed, missing = bucket < 2, bucket == 2  # 1% and 0.5%
    b = a.filter(~missing).with_columns(
        pl.when(changed & (pl.col("id") % 3 == 0))
        .then(pl.col("qty") + 1)
        .otherwise("qty")
        .alias("qty"),
        pl.when(changed & (pl.col("id") % 3 == 1))
        .then(pl.col("city") + "x")
        .otherwise("city")
        .alias("city"),
        pl.when(changed & (pl.col("id") % 3 == 2)).then(None).otherwise("day").alias("day"),
    )
    n_extra = rows // 200
    extra = a.head(n_extra).with_columns((pl.col("id") + rows).alias("id"))
    b = pl.concat([b, extra])
    expected = {
        "changed": set(a.filter(changed).get_column("id")),
        "missing": set(a.filter(missing).get_column("id")),
        "extra": set(extra.get_column("id")),
    }
    return a, b, expected


def load(conn: psycopg.Connection, table: str, frame: pl.DataFrame) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    conn.execute(sql.SQL(DDL).format(sql.Identifier(table)))  # type: ignore[arg-type]
    buf = io.BytesIO()
    frame.write_csv(buf, include_header=False, null_value="", datetime_format="%Y-%m-%d %H:%M:%S")
    copy_sql = sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(sql.Identifier(table))
    with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        view = buf.getbuffer()
        for i in range(0, len(view), 1 << 20):
            copy.write(view[i : i + (1 << 20)])
    # reladiff's bisection runs key-range queries: give it the index it expects.
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(sql.Identifier(table)))
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def ensure_tables(dsn: str, db: str, rows: int, rebuild: bool) -> dict[str, set[int]]:
    with psycopg.connect(f"{dsn} dbname=postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    a, b, expected = generate(rows)
    with psycopg.connect(f"{dsn} dbname={db}", autocommit=True) as conn:
        current = None
        if not rebuild:
            try:
                current = conn.execute("SELECT count(*) FROM bench_a").fetchone()
            except psycopg.errors.UndefinedTable:
                current = None
        if current == (rows,):
            print(f"setup: reusing bench_a/bench_b ({rows:,} rows)")
            return expected
        start = time.perf_counter()
        load(conn, "bench_a", a)
        load(conn, "bench_b", b)
        print(
            f"setup: loaded {a.height:,} + {b.height:,} rows with COPY in "
            f"{time.perf_counter() - start:.1f}s"
        )
    return expected


def run_ours(dsn: str, db: str, strategy: str) -> tuple[float, dict[str, set[int]]]:
    start = time.perf_counter()  # connecting counts, as it does for reladiff
    with psycopg.connect(f"{dsn} dbname={db}") as ca, psycopg.connect(f"{dsn} dbname={db}") as cb:
        report = reconcile_postgres(
            ca, "bench_a", cb, "bench_b", ["id"], COLUMNS, strategy=strategy
        )
        elapsed = time.perf_counter() - start
    found = {
        "changed": set(report.mismatched_keys().get_column("id")),
        "missing": set(report.missing_in_target.get_column("id")),
        "extra": set(report.extra_in_target.get_column("id")),
    }
    print(
        f"  ours: {report.source_count:,} vs {report.target_count:,} rows, "
        f"mismatch counts {report.mismatch_counts}"
    )
    return elapsed, found


def run_reladiff(dsn: str, db: str, threads: int) -> tuple[float, dict[str, set[int]]]:
    import logging

    import reladiff

    logging.disable(logging.WARNING)  # per-column "no compatibility handling" notices

    params = dict(part.split("=", 1) for part in dsn.split())
    uri = (
        f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
        f"{params.get('port', '5432')}/{db}"
    )
    start = time.perf_counter()
    t1 = reladiff.connect_to_table(uri, "bench_a", "id", thread_count=threads)
    t2 = reladiff.connect_to_table(uri, "bench_b", "id", thread_count=threads)
    # Separate connections -> HASHDIFF, reladiff's cross-database algorithm (ours also
    # works across two servers); it bisects key ranges comparing checksums.
    with reladiff.diff_tables(
        t1,
        t2,
        extra_columns=tuple(COLUMNS),
        threaded=True,
        max_threadpool_size=threads,
        algorithm=reladiff.Algorithm.HASHDIFF,
        # its sort by row crashes on NULLs (str < None); order is
        # irrelevant here
        skip_sort_results=True,
    ) as diff:
        minus, plus = set(), set()
        for sign, row in diff:
            (minus if sign == "-" else plus).add(int(row[0]))
    elapsed = time.perf_counter() - start
    return elapsed, {"changed": minus & plus, "missing": minus - plus, "extra": plus - minus}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument("--db", default="aethon_bench")
    parser.add_argument("--strategy", choices=["rows", "buckets"], default="rows")
    parser.add_argument("--reladiff-threads", type=int, default=2)
    parser.add_argument("--rebuild", action="store_true", help="reload tables even if present")
    args = parser.parse_args()

    expected = ensure_tables(args.dsn, args.db, args.rows, args.rebuild)
    print(
        f"expected: {len(expected['changed']):,} changed, {len(expected['missing']):,} "
        f"missing, {len(expected['extra']):,} extra"
    )
    ours_s, ours = run_ours(args.dsn, args.db, args.strategy)
    print(f"reconcile_postgres ({args.strategy}): {ours_s:.2f}s")
    rel_s, rel = run_reladiff(args.dsn, args.db, args.reladiff_threads)
    print(f"reladiff hashdiff ({args.reladiff_threads} threads): {rel_s:.2f}s")

    ok = True
    for name in ("changed", "missing", "extra"):
        same = ours[name] == rel[name]
        right = ours[name] == expected[name]
        ok &= same and right
        print(
            f"  {name:8s} ours={len(ours[name]):>7,} reladiff={len(rel[name]):>7,} "
            f"{'same' if same else 'DIFFERENT'}{'' if right else ' (ours != expected)'}"
        )
    print(f"speed-up: {rel_s / ours_s:.1f}x")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
