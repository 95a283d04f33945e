"""Try a mapping on sample records pasted or uploaded in the browser (CSV or JSON)."""

import io
import json
from dataclasses import dataclass

import polars as pl

from .engine import MappingSpec, compile_mapping

MAX_SAMPLE_ROWS = 1000


class SampleError(ValueError):
    pass


def read_sample(data: bytes | str, filename: str = "") -> pl.DataFrame:
    """Records as a table of text columns; JSON (a list of objects) or CSV with a header."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    text = text.strip()
    if not text:
        raise SampleError("Paste or upload some sample records first.")
    if filename.lower().endswith(".json") or text[0] in "[{":
        return _json_sample(text)
    try:
        frame = pl.read_csv(io.StringIO(text), infer_schema=False, n_rows=MAX_SAMPLE_ROWS + 1)
    except pl.exceptions.PolarsError as exc:
        raise SampleError(f"Unreadable CSV: {str(exc).splitlines()[0]}") from exc
    return _limit(frame)


def _json_sample(text: str) -> pl.DataFrame:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SampleError(
            f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise SampleError("JSON samples must be an object or a list of objects.")
    data = data[: MAX_SAMPLE_ROWS + 1]
    columns = list(dict.fromkeys(k for r in data for k in r))

    def text(v):
        return None if v is None else (json.dumps(v) if isinstance(v, dict | list) else str(v))

    return _limit(
        pl.DataFrame(
            {c: [text(r.get(c)) for r in data] for c in columns},
            schema={c: pl.String for c in columns},
        )
    )


def _limit(frame: pl.DataFrame) -> pl.DataFrame:
    if frame.height > MAX_SAMPLE_ROWS:
        raise SampleError(
            f"Samples are limited to {MAX_SAMPLE_ROWS} records; run a validation for more."
        )
    if frame.height == 0:
        raise SampleError("The sample has a header but no records.")
    return frame


@dataclass
class SampleCell:
    value: str
    reason: str = ""


@dataclass
class SampleRow:
    key: str
    cells: list[SampleCell]


@dataclass
class SampleResult:
    targets: list[str]
    rows: list[SampleRow]
    violations: dict[str, dict[str, int]]
    missing_fields: list[str]

    @property
    def total_violations(self) -> int:
        return sum(sum(v.values()) for v in self.violations.values())


def try_mapping(
    specs: list[MappingSpec], frame: pl.DataFrame, key: str | None = None
) -> SampleResult:
    """Run the mapping on the sample; each cell holds the transformed value or the violation."""
    needed = {s.source_field for s in specs}
    missing = sorted(f for f in needed if f not in frame.columns)
    for name in missing:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    key = key if key in frame.columns else "__row"
    frame = frame.with_row_index("__row", offset=1).with_columns(pl.col("__row").cast(pl.String))
    report = compile_mapping(specs).validate(frame, key, max_examples=MAX_SAMPLE_ROWS)
    # A violating cell shows the source value that failed, with the reason.
    reasons: dict[tuple[str, str], SampleCell] = {}
    for v in report.examples:
        reasons.setdefault((str(v.key), v.field), SampleCell(v.value or "", v.reason))
    targets = [s.target_field for s in specs]
    rows = []
    keys = report.output[key].cast(pl.String).to_list()
    columns = {t: report.output[t].cast(pl.String).to_list() for t in targets}
    for i, k in enumerate(keys):
        cells = [
            reasons.get((k, t)) or SampleCell("" if columns[t][i] is None else columns[t][i])
            for t in targets
        ]
        rows.append(SampleRow(k, cells))
    return SampleResult(targets, rows, report.violations, missing)
