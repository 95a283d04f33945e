"""An NDJSON file on disk read in blocks of whole lines: memory bounded by the block, not the file.

A line is one record (blank lines are skipped). The same line reader serves the file read
whole (content given as bytes) and in blocks, so both check the limits alike and name the
line at fault in every message: line length, nesting, the fields flattening makes, rows.

Column types come from a first pass over the file. Polars types a column by the kinds of
its values and the order each kind first appears in (an integer then a float is a float;
a boolean before or after a 64-bit unsigned integer is not the same), so the first pass
keeps, per column, the first value of each kind in file order, and every block is typed
with those values in front (:func:`planner.connectors.base.frame_from_records`): a column
takes the type reading the whole file gives it, whichever block its values fall in.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from planner.connectors.base import flatten_record, frame_from_records
from planner.connectors.csv_blocks import BLOCK_BYTES, raw_blocks, rebatched
from planner.connectors.names import ConnectorError
from planner.filesafety import FileLimits, FileRefused

_BREAK = b"\n"
# Integers polars may type differently: by the narrowest of these ranges holding them, and sign.
_INT_RANGES = ((-(2**63), 2**63), (0, 2**64), (-(2**127), 2**127), (0, 2**128))


def _kind(value: Any) -> Hashable:
    if type(value) is not int:
        return type(value)
    if -(2**63) <= value < 2**63:  # most integers: no need to look further
        return 0, value < 0
    fits = (i for i, (low, high) in enumerate(_INT_RANGES) if low <= value < high)
    return next(fits, len(_INT_RANGES)), value < 0


def check_record(record: dict, where: str, names: set[str], limits: FileLimits) -> None:
    """Nesting and the columns flattening will make (``names``: those seen so far), walked
    without recursion; ``where`` names the record in messages ("Line 12", "Record 3")."""
    # (value, column-name prefix or None inside an array, depth)
    stack: list[tuple[Any, str | None, int]] = [(record, "", 1)]
    while stack:
        value, prefix, depth = stack.pop()
        if depth > limits.max_json_depth:
            raise FileRefused(
                f"{where} nests deeper than {limits.max_json_depth:,} levels; "
                f"the limit is {limits.max_json_depth:,}."
            )
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            name = None if prefix is None else f"{prefix}{key}"
            if isinstance(item, dict):
                stack.append((item, None if name is None else f"{name}.", depth + 1))
                continue
            if name is not None and name not in names:
                names.add(name)
                if len(names) > limits.max_columns:
                    raise FileRefused(
                        f"{where} brings the fields to more than {limits.max_columns:,}; "
                        f"the limit is {limits.max_columns:,} columns."
                    )
            if isinstance(item, list):
                stack.append((item, None, depth + 1))


@dataclass
class LineReader:
    """Turns lines into records, counting what the limits count over the whole file."""

    limits: FileLimits
    checked: bool = True  # False: a second pass over lines that passed
    rows: int = 0
    names: set[str] = field(default_factory=set)

    def records(self, data: bytes, first_line: int) -> Iterator[dict]:
        """The records of ``data`` (whole lines; ``first_line``: the file's number of the
        first), each checked. Line lengths are checked by the caller, before reading."""
        if first_line == 1 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        for number, line in enumerate(data.split(_BREAK), start=first_line):
            if line.strip():
                yield self._record(line, number)

    def _record(self, line: bytes, number: int) -> dict:
        limits = self.limits
        try:
            record = json.loads(line.decode("utf8"))
        except UnicodeDecodeError:
            raise ConnectorError(
                f"The NDJSON file cannot be read. Line {number:,} is not valid UTF-8 text."
            ) from None
        except json.JSONDecodeError as exc:
            raise ConnectorError(
                f"The NDJSON file cannot be read. Line {number:,} is not valid JSON: "
                f"{exc.msg} (column {exc.colno:,})."
            ) from None
        except RecursionError:
            raise FileRefused(
                f"Line {number:,} nests deeper than it can be read; the limit is "
                f"{limits.max_json_depth:,} levels."
            ) from None
        if not isinstance(record, dict):
            raise ConnectorError(
                f"The NDJSON file cannot be read. Line {number:,} is not a JSON object."
            )
        if not self.checked:
            return record
        self.rows += 1
        if self.rows > limits.max_rows:
            raise FileRefused(
                f"Line {number:,} holds record {self.rows:,}; "
                f"the limit is {limits.max_rows:,} rows."
            )
        check_record(record, f"Line {number:,}", self.names, limits)
        return record


def _lines_end(data: bytes) -> int:
    return data.rfind(_BREAK) + 1


@dataclass
class NdjsonBlocks:
    """One NDJSON file read block by block; :meth:`check` first (limits, columns, types)."""

    path: Path
    infer_types: bool
    limits: FileLimits
    block_bytes: int = BLOCK_BYTES
    schema: dict[str, pl.DataType] | None = None
    rows: int = 0
    # Per column, in the file's order: the first value of each kind, in the file's order.
    lead: dict[str, list[Any]] = field(default_factory=dict)

    def _blocks(self) -> Iterator[tuple[bytes, int]]:
        return raw_blocks(self.path, self.block_bytes, self.limits, _lines_end)

    def check(self) -> None:
        """One pass over the file: the limits, every column and the values that type it."""
        if self.schema is not None:
            return
        reader = LineReader(self.limits)
        firsts: dict[str, dict[Hashable, Any]] = {}
        for data, line in self._blocks():
            for record in reader.records(data, line):
                for name, value in flatten_record(record).items():
                    kinds = firsts.setdefault(name, {})
                    if value is not None:
                        kinds.setdefault(_kind(value), value)
        self.rows = reader.rows
        self.lead = {name: list(kinds.values()) for name, kinds in firsts.items()}
        self.schema = dict(self._typed([]).schema)

    def _typed(self, records: list[dict]) -> pl.DataFrame:
        frame = frame_from_records(records, self.lead)
        if not self.infer_types:
            frame = frame.select(pl.all().cast(pl.String))
        return frame

    def frames(self) -> Iterator[pl.DataFrame]:
        """Every record, a block at a time, with the types learnt by :meth:`check`."""
        self.check()
        for data, line in self._blocks():
            records = list(LineReader(self.limits, checked=False).records(data, line))
            if records:
                yield self._typed(records)

    def batches(self, batch_size: int) -> Iterator[pl.DataFrame]:
        """Every record in frames of ``batch_size`` rows (the last may be shorter)."""
        return rebatched(self.frames(), batch_size)
