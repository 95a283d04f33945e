"""Benchmark the mapping engine on one core.

    .venv/bin/python benchmarks/mapping_engine.py [--records N] [--sample N]

Builds an in-memory table of N CRM-like records (default 1,000,000), a 20-row
mapping of mixed transforms, and times compile + validate end to end on a single
polars thread. Also times the row-by-row reference on a sample, checks that both
agree on that sample, and reports peak memory (process peak RSS via
resource.getrusage, so it includes the input table).
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # must precede the polars import

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import date, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import polars as pl  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.mapping.engine import MappingSpec, compile_mapping  # noqa: E402
from planner.mapping.reference import validate_records  # noqa: E402


def spec(
    source,
    target,
    rule,
    target_type="string",
    *,
    max_length=None,
    required=False,
    null_rule="skip",
    null_default="",
):
    return MappingSpec(
        source, target, "string", target_type, max_length, required, null_rule, null_default, rule
    )


MAPPING = [
    spec(
        "id",
        "customer_id",
        'trim | upper | regex("^C[0-9]{7}$")',
        required=True,
        null_rule="reject",
    ),
    spec(
        "status",
        "status_code",
        "trim | lower | map(active=1, inactive=0, *=reject)",
        "integer",
        required=True,
        null_rule="reject",
    ),
    spec("first_name", "first_name", "trim | max_length(40)", required=True, null_rule="reject"),
    spec(
        "last_name", "last_name", "trim | upper", max_length=40, required=True, null_rule="reject"
    ),
    spec("first_name", "full_name", 'concat(first_name, " ", last_name)', max_length=60),
    spec("email", "email", 'trim | lower | regex("^[^@ ]+@[^@ ]+\\.[a-z]+$")', max_length=120),
    spec(
        "email",
        "email_domain",
        'split("@", 1) | lower',
        null_rule="default",
        null_default="unknown",
    ),
    spec(
        "created",
        "created_epoch",
        'date("%Y-%m-%d") | epoch',
        "integer",
        required=True,
        null_rule="reject",
    ),
    spec("created", "created_de", 'date("%Y-%m-%d") | format_date("%d.%m.%Y")', max_length=10),
    spec("birthday", "birthday", 'date("%d.%m.%Y")', "date"),
    spec("amount", "amount_eur", "number(2)", "decimal", null_rule="default", null_default="0"),
    spec("amount", "amount_usd", 'number(2) | currency("EUR", "USD", rate)', "decimal"),
    spec("amount", "amount_chf", 'number(2) | currency("EUR", "CHF", 0.9412)', "decimal"),
    spec(
        "country",
        "country",
        'trim | upper | map(DE="DEU", FR="FRA", AT="AUT", CH="CHE", *=keep)',
        max_length=3,
        required=True,
        null_rule="reject",
    ),
    spec("phone", "phone", 'replace(" ", "") | max_length(16)'),
    spec("vip", "vip", "boolean", "boolean", null_rule="default", null_default="false"),
    spec("notes", "notes", 'default("") | trim', max_length=80),
    spec("zip", "zip", 'substr(0, 5) | regex("^[0-9]{5}$")'),
    spec("qty", "quantity", "integer", "integer", null_rule="default", null_default="1"),
    spec("updated", "updated_at", 'datetime("%Y-%m-%d %H:%M:%S")', "datetime"),
]


def build_table(n: int) -> pl.DataFrame:
    """Deterministic pseudo-random CRM export, all text, with a few percent of bad values.

    Cardinalities are meant to look like a real export: unique ids, e-mails, phones
    and timestamps; a few hundred names; a handful of statuses and countries.
    """
    i = pl.int_range(n, dtype=pl.Int64)
    h = (i * 2654435761 + 12345) % 1_000_003  # cheap deterministic scramble

    def pick(values: list, salt: int) -> pl.Expr:
        return pl.lit(pl.Series(values)).gather(((h * salt + i) % len(values)).cast(pl.UInt32))

    def day(year: int, offset: pl.Expr) -> pl.Expr:
        return pl.lit(date(year, 1, 1)) + pl.duration(days=offset)

    def num(expr: pl.Expr, width: int = 0) -> pl.Expr:
        text = expr.cast(pl.String)
        return text.str.pad_start(width, "0") if width else text

    # Word lists as strings keep the table readable; " Alan " needs trimming on purpose.
    first = "Ada,Grace, Alan ,Edsger,Barbara,Donald,Frances,Ken,Margaret,John,Radia,Tim".split(",")  # noqa: SIM905
    last_a = "Love Hop Tur Dijk Lis Knu Al Thomp Ham Berner Rit Kern Lam Gold Wa".split()  # noqa: SIM905
    last_b = "lace per ing stra kov th len son ilton s-Lee chie ighan port wasser".split()  # noqa: SIM905
    last = pl.concat_str(pick(last_a, 5), pick(last_b, 7))
    return pl.select(
        id=pl.format("C{}", num(i + 1, 7)),
        status=pick(["active", "inactive", " Active", "INACTIVE", "pending"] + ["active"] * 20, 7),
        first_name=pick(first, 3),
        last_name=pl.when(h % 97 == 0).then(None).otherwise(last),
        email=pl.format(
            "{}.{}{}@{}",
            pick(["ada", "grace", "alan", "ken", "tim"], 11),
            last,
            num(i),
            pick(["example.com", "Mail.org", "bad domain", "x.io"] * 5 + ["nope"], 13),
        ),
        created=pl.when(h % 89 == 0)
        .then(pl.lit("2023-02-30"))
        .otherwise(day(2015, h % 3653).dt.strftime("%Y-%m-%d")),
        birthday=pl.when(h % 83 == 0)
        .then(pl.lit("31.04.1980"))
        .otherwise(day(1940, h % 24000).dt.strftime("%d.%m.%Y")),
        amount=pl.format("{}.{}", num(h * 7 % 100_000), num(h % 100, 2)),
        rate=pick(["1.0850", "1.09", "1.1", "", "x"] + ["1.0850"] * 15, 17),
        country=pick(["de", "FR ", "at", "ch", "it", "USA", None], 19),
        phone=pl.format("+49 30 {}", num(h * 31 % 100_000_000)),
        vip=pick(["yes", "no", "Y", "N", "true", "0", "maybe", None], 23),
        notes=pick([None, "", "call back after 5pm", " VIP customer - handle with care " * 3], 29),
        zip=pick(["10115", "75001", "1010", "8001 Zurich", "20095"], 31),
        qty=num(h % 50),
        updated=(
            pl.lit(datetime(2020, 1, 1)) + pl.duration(seconds=i * 7919 % 157_680_000)
        ).dt.strftime("%Y-%m-%d %H:%M:%S"),
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=50_000, help="records for the reference")
    parser.add_argument("--repeat", type=int, default=3, help="engine runs; the best is reported")
    args = parser.parse_args()

    t = time.perf_counter()
    df = build_table(args.records)
    print(
        f"built {df.height:,} records x {df.width} columns in {time.perf_counter() - t:.2f}s "
        f"({df.estimated_size('mb'):.0f} MB), polars {pl.__version__}, "
        f"threads={pl.thread_pool_size()}"
    )
    rss_before = peak_rss_mib()

    best = best_cpu = float("inf")
    violations = examples = 0
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        report = compile_mapping(MAPPING).validate(df, "id")
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
        violations, examples = report.total_violations, len(report.examples)
        del report  # keep one report alive at a time, as a server would
    rate = args.records / best
    print(
        f"engine:    {best:.3f}s for {args.records:,} records x {len(MAPPING)} fields "
        f"= {rate:,.0f} records/s (compile + validate, wall clock, best of {args.repeat})"
    )
    print(
        f"           {best_cpu:.3f}s CPU = {args.records / best_cpu:,.0f} records/s per CPU "
        f"second (less sensitive to other load on the machine)"
    )
    print(f"           {violations:,} violations, {examples} examples kept")
    print(
        f"peak RSS:  {peak_rss_mib():,.0f} MiB (getrusage ru_maxrss, whole process, includes "
        f"the input table; {rss_before:,.0f} MiB after building it)"
    )

    sample = df.head(args.sample)
    records = sample.to_dicts()
    t, c = time.perf_counter(), time.process_time()
    ref = validate_records(MAPPING, records, "id")
    ref_time, ref_cpu = time.perf_counter() - t, time.process_time() - c
    ref_rate, ref_cpu_rate = len(records) / ref_time, len(records) / ref_cpu
    print(
        f"reference: {ref_time:.2f}s for {len(records):,} records = {ref_rate:,.0f} records/s "
        f"(row by row; {ref_cpu_rate:,.0f} per CPU second)"
    )
    print(
        f"ratio:     engine is {rate / ref_rate:,.0f}x the reference "
        f"({args.records / best_cpu / ref_cpu_rate:,.0f}x by CPU time)"
    )
    engine_sample = compile_mapping(MAPPING).validate(sample, "id")
    agree = engine_sample.violations == ref.violations and engine_sample.output.equals(ref.output)
    print(f"agreement on the sample: {'yes' if agree else 'NO'}")
    if not agree:
        sys.exit(1)


if __name__ == "__main__":
    main()
