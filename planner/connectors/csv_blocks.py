"""A CSV file on disk read in blocks of whole records: memory bounded by the block, not the file.

The file is cut at line breaks that lie outside quoted fields (RFC 4180 doubles a quote inside
a quoted field, so a break is a record boundary when an even number of quotes precedes it);
each block is parsed on its own with the header in front. A first pass checks the limits
(line length, columns, rows) and learns the column types the way reading the whole file
would: a column takes one type over every block, numbers of both kinds become decimals, any
other disagreement text, and a column empty everywhere is text. Inference never changes what
an identifier or a code says (`inexact_columns`): the same rule holds for the whole file.
"""

from __future__ import annotations

import codecs
import csv
import re
import shutil
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

from planner.connectors.csv_check import csv_problem, engine_summary
from planner.connectors.names import ConnectorError
from planner.filesafety import FileLimits, FileRefused, check_lines, line_too_long

BLOCK_BYTES = 4 * 1024 * 1024
_LINE = re.compile(r"^Line (\d+)")
_QUOTE, _BREAK = b'"', b"\n"


def transcode_to_utf8(path: Path, encoding: str, out: Path) -> Path:
    """Write ``path`` as UTF-8 to ``out``, a piece at a time (the parser reads UTF-8 only)."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConnectorError(f"Unknown text encoding '{encoding}'.") from None
    try:
        with path.open(encoding=encoding, newline="") as src, out.open("w", newline="") as dst:
            shutil.copyfileobj(src, dst, BLOCK_BYTES)
    except UnicodeDecodeError:
        raise ConnectorError(f"The file is not valid {encoding.upper()} text.") from None
    return out


def _record_end(data: bytes, quotes_before: int) -> int:
    """The index after the last line break of ``data`` outside a quoted field (0: none)."""
    at = len(data)
    while True:
        at = data.rfind(_BREAK, 0, at)
        if at < 0:
            return 0
        if (quotes_before + data.count(_QUOTE, 0, at)) % 2 == 0:
            return at + 1


def _first_record_end(data: bytes) -> int:
    """The index after the first line break outside a quoted field (0: none)."""
    at = data.find(_BREAK)
    while at >= 0:
        if data.count(_QUOTE, 0, at) % 2 == 0:
            return at + 1
        at = data.find(_BREAK, at + 1)
    return 0


def _check_unfinished(data: bytes, handle: BinaryIO, limits: FileLimits, line: int) -> None:
    """``check_lines`` on bytes whose last line goes on in ``handle``: a last line over the
    limit is measured to its end (not held), so the message gives its length."""
    start = data.rfind(_BREAK) + 1
    check_lines(data[:start], limits, first_line=line)
    length = len(data) - start
    if length <= limits.max_line_bytes:
        return
    while piece := handle.read(BLOCK_BYTES):
        at = piece.find(_BREAK)
        length += len(piece) if at < 0 else at
        if at >= 0:
            break
    raise line_too_long(line + data.count(_BREAK, 0, start), length, limits.max_line_bytes)


def _csv_records_end(data: bytes) -> int:
    return _record_end(data, 0)


def raw_blocks(
    path: Path,
    block_bytes: int,
    limits: FileLimits,
    records_end: Callable[[bytes], int] = _csv_records_end,
) -> Iterator[tuple[bytes, int]]:
    """(bytes of whole records, number of the block's first line), the file's first line
    included first; ``records_end`` finds where the last whole record of some bytes ends."""
    line = 1
    carry = b""
    with path.open("rb") as handle:
        while True:
            piece = handle.read(block_bytes)
            data = carry + piece
            if not piece:
                if data.strip():
                    check_lines(data, limits, first_line=line)
                    yield data, line
                return
            end = records_end(data)
            if end == 0:
                # No record ends in this block: a record longer than a block; read on, but
                # never past the line limit.
                _check_unfinished(data, handle, limits, line)
                carry = data
                continue
            whole, carry = data[:end], data[end:]
            check_lines(whole, limits, first_line=line)
            yield whole, line
            line += whole.count(_BREAK)


def inexact_columns(
    typed: pl.DataFrame, key: Collection[str], text: Callable[[list[str]], pl.DataFrame]
) -> set[str]:
    """The columns inference must leave as text in ``typed`` (records read with inference);
    ``text(names)``: the same records' columns ``names`` read as text.

    A key column is an identifier: "007" and "7", "1.0" and "1" are different records, so a
    key is read as integers only when every value is written as its integer writes it
    (str(int(v)) == v), and never as a decimal or a truth value. Any other column of integers
    holding a value written otherwise ("007", "+3") holds codes, compared as written. Other
    numbers are measures and stay numbers: 10.50 and 10.5 are one amount.
    """
    out = {n for n, t in typed.schema.items() if n in key and t != pl.String and not t.is_integer()}
    integers = [n for n, t in typed.schema.items() if t.is_integer() and n not in out]
    if integers:
        written = text(integers)
        for name in integers:
            if typed.get_column(name).cast(pl.String).ne(written.get_column(name)).any():
                out.add(name)
    return out


def _merge_type(known: pl.DataType | None, seen: pl.DataType) -> pl.DataType:
    if known is None or known == seen:
        return seen
    if known.is_numeric() and seen.is_numeric():
        return pl.Float64 if (known.is_float() or seen.is_float()) else pl.Int64
    return pl.String


@dataclass
class CsvBlocks:
    """One CSV file read block by block; :meth:`check` first (limits, header, types)."""

    path: Path
    delimiter: str
    infer_types: bool
    limits: FileLimits
    block_bytes: int = BLOCK_BYTES
    key: tuple[str, ...] = ()
    schema: dict[str, pl.DataType] | None = None
    rows: int = 0
    header: bytes = b""

    def _parse(self, data: bytes, first_line: int = 2, **options) -> pl.DataFrame:
        """One block (the header in front); ``first_line``: the file's line of its first record."""
        try:
            return pl.read_csv(
                data, separator=self.delimiter, encoding="utf8", raise_if_empty=False, **options
            )
        except pl.exceptions.PolarsError as exc:
            # The engine names its options, not the line at fault: say it in the file's lines.
            problem = csv_problem(data, self.delimiter)
            if problem:
                problem = _LINE.sub(
                    lambda m: f"Line {int(m.group(1)) - 2 + first_line}", problem, count=1
                )
            raise ConnectorError(
                f"The CSV file cannot be read. {problem or engine_summary(exc)}"
            ) from None

    def _blocks(self) -> Iterator[tuple[bytes, int]]:
        first = True
        for data, line in raw_blocks(self.path, self.block_bytes, self.limits):
            if first:
                first = False
                end = _first_record_end(data) or len(data)
                self.header = data[:end]
                data = data[end:]
                line += self.header.count(_BREAK)
            if data.strip():
                yield data, line

    def check(self) -> None:
        """One pass over the file: the limits, the header's width, every column's type."""
        if self.schema is not None:
            return
        self._check_header()
        types: dict[str, pl.DataType | None] = {}
        inexact: set[str] = set()
        rows = 0
        names: list[str] = []
        for data, line in self._blocks():
            block = self.header + data
            frame = self._parse(
                block, line, infer_schema=self.infer_types, infer_schema_length=None
            )
            if self.infer_types:
                inexact |= inexact_columns(
                    frame,
                    self.key,
                    lambda names, block=block, line=line: self._parse(
                        block, line, infer_schema=False, columns=names
                    ),
                )
            names = frame.columns
            rows += frame.height
            if rows + 1 > self.limits.max_rows:  # the header is a row too
                raise FileRefused(
                    f"Row {self.limits.max_rows + 1:,}: the limit is {self.limits.max_rows:,} rows."
                )
            for name, dtype in frame.schema.items():
                if frame.get_column(name).null_count() < frame.height:
                    types[name] = _merge_type(types.get(name), dtype)
                else:
                    types.setdefault(name, None)
        if not names:
            names = self._parse(self.header).columns
        self.rows = rows
        self.schema = {n: pl.String if n in inexact else (types.get(n) or pl.String) for n in names}

    def _check_header(self) -> None:
        with self.path.open("rb") as handle:
            first = handle.read(self.limits.max_line_bytes + 1)
        if not first.strip():
            raise ConnectorError(
                "The CSV file cannot be read. The file is empty: it needs a header row."
            )
        line = first.split(_BREAK, 1)[0].decode("utf8", "replace")
        columns = len(next(csv.reader([line], delimiter=self.delimiter), []))
        if columns > self.limits.max_columns:
            raise FileRefused(
                f"Row 1 has {columns:,} columns; the limit is {self.limits.max_columns:,}."
            )

    def frames(self) -> Iterator[pl.DataFrame]:
        """Every record, a block at a time, with the types learnt by :meth:`check`."""
        self.check()
        for data, line in self._blocks():
            yield self._parse(self.header + data, line, schema=self.schema)

    def batches(self, batch_size: int) -> Iterator[pl.DataFrame]:
        """Every record in frames of ``batch_size`` rows (the last may be shorter)."""
        return rebatched(self.frames(), batch_size)


def rebatched(frames: Iterator[pl.DataFrame], batch_size: int) -> Iterator[pl.DataFrame]:
    """``frames`` (of one schema) cut and joined into frames of ``batch_size`` rows."""
    pending: list[pl.DataFrame] = []
    held = 0
    for frame in frames:
        pending.append(frame)
        held += frame.height
        while held >= batch_size:
            joined = pl.concat(pending)
            yield joined.head(batch_size)
            rest = joined.slice(batch_size)
            pending, held = [rest], rest.height
    if held:
        yield pl.concat(pending)
