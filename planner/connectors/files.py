"""File connector: CSV, JSON / NDJSON and XLSX, from uploaded bytes or an allowed path."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import polars as pl

from planner.connectors import csv_blocks
from planner.connectors.base import (
    DEFAULT_BATCH_SIZE,
    BaseConnector,
    ConnectorError,
    frame_from_records,
    frame_from_rows,
    optional_str,
    parse_key,
    unique_names,
)
from planner.connectors.csv_blocks import CsvBlocks, transcode_to_utf8
from planner.connectors.csv_check import csv_problem, engine_summary
from planner.connectors.guard import GuardPolicy, check_path
from planner.connectors.http_json import parse_path, select_records
from planner.connectors.ndjson_blocks import LineReader, NdjsonBlocks, check_record
from planner.filesafety import FileLimits, FileRefused, check_lines, check_xlsx, configured_limits

FORMATS = ("csv", "json", "ndjson", "xlsx")
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json", ".jsonl": "ndjson"}
_SUFFIXES |= {".ndjson": "ndjson", ".xlsx": "xlsx", ".xlsm": "xlsx"}


@dataclass(frozen=True)
class FileConfig:
    format: str
    path: str | None = None
    content: bytes | None = None
    delimiter: str = ","
    encoding: str = "utf8"
    sheet: str | None = None
    records_path: str = "$"
    infer_types: bool = True
    key: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> FileConfig:
        path, content = config.get("path"), config.get("content")
        if bool(path) == (content is not None):
            raise ConnectorError("Give either a file path or the uploaded file content.")
        if content is not None and not isinstance(content, bytes | bytearray):
            raise ConnectorError("File content must be bytes.")
        name = str(path or config.get("filename") or "")
        fmt = optional_str(config, "format") or _SUFFIXES.get(PurePath(name).suffix.lower())
        if fmt not in FORMATS:
            raise ConnectorError(f"Unknown file format; choose one of {', '.join(FORMATS)}.")
        delimiter = optional_str(config, "delimiter") or ("\t" if name.endswith(".tsv") else ",")
        if delimiter == "\\t":
            delimiter = "\t"
        if len(delimiter) != 1:
            raise ConnectorError("The CSV delimiter must be a single character.")
        records_path = optional_str(config, "records_path", "$") or "$"
        parse_path(records_path)
        return cls(
            format=fmt,
            path=str(path) if path else None,
            content=bytes(content) if content is not None else None,
            delimiter=delimiter,
            encoding=optional_str(config, "encoding", "utf8") or "utf8",
            sheet=optional_str(config, "sheet"),
            records_path=records_path,
            infer_types=bool(config.get("infer_types", True)),
            key=parse_key(config.get("key")),
        )


class FileConnector(BaseConnector):
    """Files are bounded by ``GuardPolicy.max_file_bytes`` and checked by ``planner.filesafety``
    (AETHON_FILE_LIMITS) before they are parsed: a small file must not expand into gigabytes
    (XLSX bombs, endless lines, deep JSON, millions of columns).

    A CSV or NDJSON file on disk (an upload in storage) is read in blocks of records
    (:mod:`planner.connectors.csv_blocks`, :mod:`planner.connectors.ndjson_blocks`), so
    neither a run nor a probe holds it whole. JSON and XLSX files, and CSV or NDJSON content
    given as bytes, are parsed whole, once: a JSON document is one value (polars has no
    reader that streams the records of an array), an XLSX workbook a zip archive.
    """

    kind = "file"
    config_class = FileConfig
    config: FileConfig

    def __init__(self, config: FileConfig, secrets: Mapping[str, Any], guard: GuardPolicy):
        super().__init__(config, secrets, guard)
        self._frame: pl.DataFrame | None = None
        self._blocks: CsvBlocks | NdjsonBlocks | None = None

    def whole_reason(self) -> str | None:
        """Why this file is parsed whole (None: it is read in blocks)."""
        cfg = self.config
        if cfg.format not in ("csv", "ndjson"):
            return f"{cfg.format.upper()} files are parsed whole"
        if not cfg.path:
            return f"the {cfg.format.upper()} file was given as content, not as a file on disk"
        return None

    def blocks(self) -> CsvBlocks | NdjsonBlocks | None:
        """The file in blocks, its limits and column types checked (None: parsed whole)."""
        if self.whole_reason() is not None:
            return None
        if self._blocks is None:
            cfg = self.config
            with self._errors(f"Could not read the {cfg.format.upper()} file"):
                path = check_path(cfg.path or "", self.guard)
                if cfg.encoding.lower().replace("-", "") != "utf8":
                    folder = tempfile.mkdtemp(prefix="aethon-file-")
                    weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
                    path = transcode_to_utf8(path, cfg.encoding, Path(folder) / "utf8")
                limits, size = configured_limits(), csv_blocks.BLOCK_BYTES
                blocks: CsvBlocks | NdjsonBlocks
                if cfg.format == "csv":
                    blocks = CsvBlocks(
                        path, cfg.delimiter, cfg.infer_types, limits, size, tuple(cfg.key)
                    )
                else:
                    blocks = NdjsonBlocks(path, cfg.infer_types, limits, size)
                try:
                    blocks.check()
                except FileRefused as exc:
                    raise ConnectorError(str(exc)) from None
            self._blocks = blocks
        return self._blocks

    def _bytes(self) -> bytes:
        if self.config.content is not None:
            if len(self.config.content) > self.guard.max_file_bytes:
                raise ConnectorError(
                    f"The file is larger than the limit of {self.guard.max_file_bytes:,} bytes."
                )
            return self.config.content
        return check_path(self.config.path or "", self.guard).read_bytes()

    def frame(self) -> pl.DataFrame:
        """The whole file as one frame (parsed once per connector instance)."""
        blocks = self.blocks()
        if blocks is not None:
            return self._joined(blocks)
        if self._frame is None:
            with self._errors(f"Could not read the {self.config.format.upper()} file"):
                try:
                    self._frame = self._parse(self._bytes(), configured_limits())
                except FileRefused as exc:
                    raise ConnectorError(str(exc)) from None
        return self._frame

    def _parse(self, data: bytes, limits: FileLimits) -> pl.DataFrame:
        cfg = self.config
        if cfg.format == "csv":
            if cfg.encoding.lower().replace("-", "") != "utf8":
                data = data.decode(cfg.encoding).encode()
            check_lines(data, limits)
            _check_csv_header(data, cfg.delimiter, limits)
            # Strict UTF-8: silently replaced bytes would surface later as data mismatches.
            try:
                frame = pl.read_csv(
                    data,
                    separator=cfg.delimiter,
                    encoding="utf8",
                    infer_schema=cfg.infer_types,
                    infer_schema_length=None,  # a late "N/A" in a numeric column must not fail
                )
            except pl.exceptions.PolarsError as exc:
                # The engine's message names its tuning options, not the line at fault.
                problem = csv_problem(data, cfg.delimiter) or engine_summary(exc)
                raise ConnectorError(f"The CSV file cannot be read. {problem}") from None
            if cfg.infer_types:
                frame = _keep_text(frame, data, cfg)
            if frame.height + 1 > limits.max_rows:  # the header is a row too
                raise FileRefused(
                    f"Row {limits.max_rows + 1:,}: the limit is {limits.max_rows:,} rows."
                )
            return frame
        if cfg.format == "ndjson":
            if cfg.encoding.lower().replace("-", "") != "utf8":
                data = data.decode(cfg.encoding).encode()
            check_lines(data, limits)
            return self._typed(frame_from_records(list(LineReader(limits).records(data, 1))))
        if cfg.format == "json":
            document = _json(data.decode(cfg.encoding), limits)
            return self._records(select_records(document, parse_path(cfg.records_path)), limits)
        return self._xlsx(data, limits)

    def _records(self, records: list[Any], limits: FileLimits) -> pl.DataFrame:
        if any(not isinstance(r, dict) for r in records):
            raise ConnectorError("Each JSON record must be an object.")
        _check_records(records, limits)
        return self._typed(frame_from_records(records))

    def _typed(self, frame: pl.DataFrame) -> pl.DataFrame:
        if not self.config.infer_types:
            frame = frame.select(pl.all().cast(pl.String))
        return frame

    def _xlsx(self, data: bytes, limits: FileLimits) -> pl.DataFrame:
        import openpyxl

        check_xlsx(data, limits)
        book = openpyxl.load_workbook(
            io.BytesIO(data), read_only=True, data_only=True, keep_links=False
        )
        try:
            if self.config.sheet:
                if self.config.sheet not in book.sheetnames:
                    raise ConnectorError(f"Sheet '{self.config.sheet}' not found.")
                sheet = book[self.config.sheet]
            else:
                sheet = book.worksheets[0]
            sheet.reset_dimensions()  # the size a sheet claims is not trusted: rows would be padded
            rows = sheet.iter_rows(values_only=True)
            header = next(rows, None)
            if header is None:
                return pl.DataFrame()
            width = max((i + 1 for i, h in enumerate(header) if h not in (None, "")), default=0)
            names = unique_names(
                str(h) if h not in (None, "") else f"column_{i + 1}"
                for i, h in enumerate(header[:width])
            )
            # Short rows are padded to the header's width: that is what the cell limit counts.
            most = max(limits.max_cells // max(width, 1), 1)
            body = []
            for r in rows:
                if any(v not in (None, "") for v in r[:width]):
                    if len(body) == most:
                        raise FileRefused(
                            f"More than {limits.max_cells:,} cells ({len(body):,} rows of "
                            f"{width:,} columns); the limit is {limits.max_cells:,}."
                        )
                    body.append(tuple(r[:width]) + (None,) * (width - len(r)))
        finally:
            book.close()
        return self._typed(frame_from_rows(names, body))

    def _joined(self, blocks: CsvBlocks | NdjsonBlocks) -> pl.DataFrame:
        frames = list(blocks.frames())
        if not frames:
            return pl.DataFrame(schema=blocks.schema)
        return pl.concat(frames)

    def _probe(self) -> pl.DataFrame:
        blocks = self.blocks()
        if blocks is None:
            return self.frame().head(1)
        first = next(blocks.batches(1), None)
        return first if first is not None else pl.DataFrame(schema=blocks.schema)

    def fetch(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pl.DataFrame]:
        blocks = self.blocks()
        if blocks is not None:
            with self._errors(f"Could not read the {self.config.format.upper()} file"):
                yield from blocks.batches(batch_size)
            return
        yield from self.frame().iter_slices(batch_size)

    def count(self) -> int | None:
        blocks = self.blocks()
        return blocks.rows if blocks is not None else self.frame().height


def _keep_text(frame: pl.DataFrame, data: bytes, cfg: FileConfig) -> pl.DataFrame:
    """The inferred ``frame`` with its keys and codes as written (`inexact_columns`)."""
    written: dict[str, pl.Series] = {}

    def text(names: list[str]) -> pl.DataFrame:
        read = pl.read_csv(
            data, separator=cfg.delimiter, encoding="utf8", infer_schema=False, columns=names
        )
        written.update({name: read.get_column(name) for name in names})
        return read

    inexact = csv_blocks.inexact_columns(frame, cfg.key, text)
    if inexact - written.keys():
        text(sorted(inexact - written.keys()))
    return frame.with_columns(written[name] for name in sorted(inexact))


def _check_csv_header(data: bytes, delimiter: str, limits: FileLimits) -> None:
    """Count the header's columns before polars builds one column each."""
    first = data[: limits.max_line_bytes + 1].split(b"\n", 1)[0].decode("utf8", "replace")
    columns = len(next(csv.reader([first], delimiter=delimiter), []))
    if columns > limits.max_columns:
        raise FileRefused(f"Row 1 has {columns:,} columns; the limit is {limits.max_columns:,}.")


def _json(text: str, limits: FileLimits) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise FileRefused(
            f"The JSON nests deeper than it can be read; the limit is {limits.max_json_depth:,} "
            "levels."
        ) from None


def _check_records(records: list[dict], limits: FileLimits) -> None:
    """Rows, nesting and the columns flattening will make."""
    if len(records) > limits.max_rows:
        raise FileRefused(
            f"The file holds {len(records):,} records; the limit is {limits.max_rows:,} rows."
        )
    names: set[str] = set()
    for number, record in enumerate(records, start=1):
        check_record(record, f"Record {number:,}", names, limits)
