"""Benchmark reading timestamps held as text (CSV exports, SQLite) on one core.

    .venv/bin/python benchmarks/text_timestamps.py [--records N] [--budget X]

Times the mapping engine reading N texts (default 1,000,000) into a datetime target in
four spellings: plain ISO, with a fraction and an offset, a fraction only, a bare +HH
offset. Prints seconds per spelling and each one's cost relative to plain ISO, checks every
value was read, and exits non-zero when plain ISO costs more than --budget times what it
costs without the timestamp reading (default 1.3: plain datetimes must not pay for it).
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # must precede the polars import

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polars as pl  # noqa: E402

from planner.mapping import engine  # noqa: E402
from planner.mapping import transforms as tf  # noqa: E402

SPELLINGS = {
    "plain ISO": "2024-01-{d:02d} 10:{m:02d}:00",
    "fraction + offset": "2024-01-{d:02d}T10:{m:02d}:00.{f:06d}+02:00",
    "fraction only": "2024-01-{d:02d} 10:{m:02d}:00.{f:06d}",
    "bare +HH offset": "2024-01-{d:02d}T10:{m:02d}:00-05",
}


def seconds(frame: pl.DataFrame, expr: pl.Expr) -> tuple[float, int]:
    start = time.perf_counter()
    out = frame.lazy().select(expr).collect()
    return time.perf_counter() - start, out.null_count().item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--budget", type=float, default=1.3)
    args = parser.parse_args()
    n, target = args.records, tf.ValueType("datetime")
    iso_only = pl.coalesce(
        [engine.parse_date(pl.col("v"), f, "datetime") for f in tf.ISO_DATETIMES]
    )
    failed = False
    for name, pattern in SPELLINGS.items():
        texts = [pattern.format(d=1 + i % 28, m=i % 60, f=i % 1_000_000) for i in range(n)]
        frame = pl.DataFrame({"v": texts})
        took, unread = seconds(frame, engine.parse_text(pl.col("v"), target))
        if name == "plain ISO":
            before, _ = seconds(frame, iso_only)
            plain_cost = took / before
            print(f"{name:>18}: {took:6.2f} s for {n:,} ({plain_cost:.2f}× without stamps)")
            failed |= plain_cost > args.budget
        else:
            print(f"{name:>18}: {took:6.2f} s for {n:,}")
        if unread:
            print(f"  {unread:,} values not read")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
