"""Two PostgreSQL tables for the run benchmarks, generated in the same run, and reladiff on them.

``bench_a`` (source) and ``bench_b`` (target): id + 10 columns; the target has 1% of rows
changed, 0.5% missing and 0.5% extra. ``bench_t`` is ``bench_b`` with ``name`` and ``city``
upper-cased, the target of a mapping with real transforms. A helper (its name starts with
``_``), not a benchmark of its own.
"""

from __future__ import annotations

import io
import time

import polars as pl
import psycopg
from psycopg import sql

COLUMNS = ["name", "qty", "amount", "ratio", "created", "day", "active", "city", "score", "note"]
DDL = """CREATE UNLOGGED TABLE {} (id bigint, name text, qty int, amount numeric(12,2),
    ratio float8, created timestamp, day date, active boolean, city text, score int, note text)"""


def _buckets() -> tuple[pl.Expr, pl.Expr]:
    """Which source rows the target changes (1%) and leaves out (0.5%), by their id alone."""
    bucket = pl.col("id").hash(seed=42) % 200
    return bucket < 2, bucket == 2


def expected_keys(rows: int) -> dict[str, set[int]]:
    """The key sets :func:`generate` produces, from the ids alone: tables already loaded
    are reused without building their columns again (10 M rows take minutes and gigabytes)."""
    changed, missing = _buckets()
    ids = pl.DataFrame(pl.int_range(1, rows + 1, eager=True, dtype=pl.Int64).alias("id"))
    marks = ids.select("id", changed.alias("changed"), missing.alias("missing"))
    return {
        "changed": set(marks.filter("changed").get_column("id")),
        "missing": set(marks.filter("missing").get_column("id")),
        "extra": set(range(rows + 1, rows + rows // 200 + 1)),
    }


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
    changed, missing = _buckets()
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
    expected = expected_keys(rows)
    target_rows = rows - len(expected["missing"]) + len(expected["extra"])
    with psycopg.connect(f"{dsn} dbname={db}", autocommit=True) as conn:
        current = None
        if not rebuild:
            try:
                current = conn.execute(
                    "SELECT (SELECT count(*) FROM bench_a), (SELECT count(*) FROM bench_b),"
                    " (SELECT count(*) FROM bench_t)"
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                current = None
        if current == (rows, target_rows, target_rows):
            print(f"setup: reusing bench_a/bench_b/bench_t ({rows:,} rows; --rebuild reloads)")
            return expected
        start = time.perf_counter()
        a, b, generated = generate(rows)
        assert generated == expected
        load(conn, "bench_a", a)
        load(conn, "bench_b", b)
        load(
            conn,
            "bench_t",
            b.with_columns(pl.col("name").str.to_uppercase(), pl.col("city").str.to_uppercase()),
        )
        print(
            f"setup: loaded {a.height:,} + 2 x {b.height:,} rows with COPY in "
            f"{time.perf_counter() - start:.1f}s"
        )
    return expected


def run_reladiff(
    uri: str, target: str, threads: int, algorithm: str
) -> tuple[float, dict[str, set[int]]]:
    """reladiff's diff of bench_a and ``target``; ``algorithm`` is "hashdiff" or "joindiff"."""
    import logging

    import reladiff

    logging.disable(logging.WARNING)  # per-column "no compatibility handling" notices
    start = time.perf_counter()
    t1 = reladiff.connect_to_table(uri, "bench_a", "id", thread_count=threads)
    t2 = reladiff.connect_to_table(uri, target, "id", thread_count=threads)
    algo = reladiff.Algorithm.JOINDIFF if algorithm == "joindiff" else reladiff.Algorithm.HASHDIFF
    with reladiff.diff_tables(
        t1,
        t2,
        extra_columns=tuple(COLUMNS),
        threaded=True,
        max_threadpool_size=threads,
        algorithm=algo,
        # its sort by row crashes on NULLs (str < None); order is irrelevant here
        skip_sort_results=True,
    ) as diff:
        minus, plus = set(), set()
        for sign, row in diff:
            (minus if sign == "-" else plus).add(int(row[0]))
    elapsed = time.perf_counter() - start
    return elapsed, {"changed": minus & plus, "missing": minus - plus, "extra": plus - minus}
