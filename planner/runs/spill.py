"""Key order for sides that cannot sort themselves (CSV and NDJSON files, paged HTTP APIs),
through disk.

An external merge sort whose memory is bounded by the chunk, not the dataset: the connector's
batches are written to a temporary directory as they arrive; once every batch is known, each
is brought to the columns and types the whole-table path would give the concatenation
(``diagonal_relaxed``, as :meth:`planner.runs.service.Runner.fetch` joins batches), sorted by
the key in runs of ``RUN_ROWS`` rows, each run one Parquet file with a row group per piece
(pieces sized so that one of every run together is about a chunk). The runs are then merged a
piece per run at a time: the rows below the smallest last key of the open runs are complete,
so they are sorted and handed on. Rows with a null key part come last, as the SQL connectors
send them (the merge counts and drops them). Text sorts by code point (UTF-8 bytes), as the
databases are asked to sort.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from planner.connectors.names import ConnectorError

# Rows of one sorted run, and the fewest of one piece read back from it during the merge.
RUN_ROWS = 100_000
MIN_PIECE_ROWS = 1_000


def why_whole(connector: Any) -> str | None:
    """Why a side cannot be sorted through disk (None: it can)."""
    if connector is None:
        return "it is not connected"
    if connector.kind == "http_json":
        return None
    reason = getattr(connector, "whole_reason", None)
    if callable(reason):
        return reason()
    return "its connector reads it whole"


def _below(frame: pl.DataFrame, key: Sequence[str], bound: tuple[Any, ...]) -> pl.Series:
    """Rows whose key is lexicographically below ``bound``."""
    expr = pl.lit(False)
    for name, value in reversed(list(zip(key, bound, strict=True))):
        lit = pl.lit(value, dtype=frame.schema[name])
        expr = (pl.col(name) < lit) | ((pl.col(name) == lit) & expr)
    return frame.select(expr).to_series()


def _last(frame: pl.DataFrame, key: Sequence[str]) -> tuple[Any, ...]:
    return tuple(frame.get_column(k)[-1] for k in key)


def _first(frame: pl.DataFrame, key: Sequence[str]) -> tuple[Any, ...]:
    return tuple(frame.get_column(k)[0] for k in key)


class _Run:
    """One sorted run on disk (a Parquet file, a row group per piece), read a piece at a time."""

    def __init__(self, path: Path, rows: int, piece_rows: int) -> None:
        self.path, self.rows, self.piece_rows = path, rows, piece_rows
        self.offset = 0
        self.buffer: pl.DataFrame | None = None

    @property
    def done(self) -> bool:
        return self.offset >= self.rows

    def pull(self) -> None:
        piece = pl.scan_parquet(self.path).slice(self.offset, self.piece_rows).collect()
        self.offset += self.piece_rows
        self.buffer = piece if self.buffer is None else pl.concat([self.buffer, piece])


def _write(frame: pl.DataFrame, path: Path, row_group_rows: int) -> Path:
    frame.write_parquet(path, compression="lz4", statistics=False, row_group_size=row_group_rows)
    return path


def _read_slices(path: Path, rows: int, chunk_rows: int) -> Iterator[pl.DataFrame]:
    for offset in range(0, rows, chunk_rows):
        yield pl.scan_parquet(path).slice(offset, chunk_rows).collect()


def sorted_chunks(
    batches: Iterator[pl.DataFrame],
    key: Sequence[str],
    chunk_rows: int,
    *,
    run_rows: int | None = None,
    folder: str | None = None,
) -> Iterator[pl.DataFrame]:
    """The rows of ``batches`` in ``key`` order (nulls last), a piece of each run at a time.

    The temporary files are removed however the reading ends.
    """
    key = list(key)
    run_rows = run_rows or RUN_ROWS
    work = Path(tempfile.mkdtemp(prefix="aethon-sort-", dir=folder))
    try:
        spilled, total = _spill(batches, work, run_rows)
        if not spilled:
            return
        # The columns and types of every batch joined, without reading the batches again.
        template = pl.concat(
            [pl.scan_ipc(p).head(0) for p in spilled], how="diagonal_relaxed"
        ).collect()
        missing = [k for k in key if k not in template.columns]
        if missing:
            raise ConnectorError(f"The dataset has no field(s) {', '.join(missing)}.")
        # A piece of every run together is about a chunk.
        piece_rows = max(min(chunk_rows, run_rows) // math.ceil(total / run_rows), MIN_PIECE_ROWS)
        has_null = pl.any_horizontal([pl.col(k).is_null() for k in key])
        runs: list[_Run] = []
        nulls: list[tuple[Path, int]] = []
        for i, frame in enumerate(_regrouped(spilled, template, run_rows)):
            keyed = frame.filter(~has_null).sort(key, maintain_order=True)
            if keyed.height:
                path = _write(keyed, work / f"run-{i}.parquet", piece_rows)
                runs.append(_Run(path, keyed.height, piece_rows))
            unkeyed = frame.filter(has_null)
            if unkeyed.height:
                nulls.append(
                    (_write(unkeyed, work / f"nulls-{i}.parquet", chunk_rows), unkeyed.height)
                )
            del frame, keyed, unkeyed
        for frame in _merge(runs, key):
            yield from frame.iter_slices(chunk_rows)
        for path, rows in nulls:
            yield from _read_slices(path, rows, chunk_rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _spill(batches: Iterator[pl.DataFrame], work: Path, rows: int) -> tuple[list[Path], int]:
    """The batches written to ``work`` as they arrive (those of one schema together, up to
    ``rows`` a file), and how many rows they hold."""
    spilled: list[Path] = []
    total = 0
    group: list[pl.DataFrame] = []
    held = 0

    def flush() -> None:
        nonlocal group, held
        if group:
            path = work / f"batch-{len(spilled)}.ipc"
            pl.concat(group).write_ipc(path, compression="lz4")
            spilled.append(path)
        group, held = [], 0

    try:
        for batch in batches:
            if batch.width == 0:
                continue
            if group and (batch.schema != group[0].schema or held >= rows):
                flush()
            group.append(batch)
            held += batch.height
            total += batch.height
        flush()
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return spilled, total


def _regrouped(spilled: list[Path], template: pl.DataFrame, rows: int) -> Iterator[pl.DataFrame]:
    """The spilled batches, in the joined columns and types, in frames of about ``rows``."""
    pending: list[pl.DataFrame] = []
    held = 0
    for path in spilled:
        batch = pl.read_ipc(path)
        path.unlink()
        pending.append(pl.concat([template, batch], how="diagonal_relaxed"))
        held += batch.height
        if held >= rows:
            yield pl.concat(pending)
            pending, held = [], 0
    if pending:
        yield pl.concat(pending)


def _merge(runs: list[_Run], key: list[str]) -> Iterator[pl.DataFrame]:
    for run in runs:
        if not run.done:
            run.pull()
    while True:
        open_runs = [r for r in runs if not r.done and r.buffer is not None and r.buffer.height]
        if not open_runs:
            rest = [r.buffer for r in runs if r.buffer is not None and r.buffer.height]
            if rest:
                yield pl.concat(rest).sort(key, maintain_order=True)
            return
        bound = min(_last(r.buffer, key) for r in open_runs)  # type: ignore[arg-type]
        ready = []
        for run in runs:
            buffer = run.buffer
            if buffer is None or not buffer.height or _first(buffer, key) >= bound:
                continue
            # A run is sorted: the rows below the bound are its first ones.
            n = int(_below(buffer, key, bound).sum())
            ready.append(buffer.head(n))
            run.buffer = buffer.slice(n)
        out = pl.concat(ready).sort(key, maintain_order=True) if ready else None
        if out is not None and out.height:
            yield out
        # The runs whose buffer ends at the bound are behind: read their next piece.
        for run in open_runs:
            if run.buffer is not None and (
                not run.buffer.height or _last(run.buffer, key) == bound
            ):
                run.pull()
