"""Try a mapping on sample records pasted or uploaded in the browser (CSV or JSON).

Whatever the sample or the stored rows hold, the outcome is a result or a `SampleError` in
words for the user, never an exception out of the view: samples come from anyone who may view
the project, and rows may predate the form's checks (imports, older versions).
"""

import io
import json
import logging
import re
import sys
from dataclasses import dataclass
from itertools import accumulate

import polars as pl

from . import transforms as tf
from .engine import (
    CompiledMapping,
    FieldPlan,
    MappingSpec,
    compile_mapping,
    plan_field,
    target_type_of,
)
from .rules import RuleError, output_type, parse
from .specs import spec_of

log = logging.getLogger(__name__)

MAX_SAMPLE_ROWS = 1000
# Records are flat objects; a little nesting inside a value is kept as JSON text. Far deeper
# input is an attack on the parser (json.loads recurses once per level).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class SampleError(ValueError):
    pass


def read_sample(data: bytes | str, filename: str = "") -> pl.DataFrame:
    """Records as a table of text columns; JSON (a list of objects) or CSV with a header."""
    text = _decode(data) if isinstance(data, bytes) else data
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


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SampleError(
            f"The file is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} cannot be "
            "read. Save it as UTF-8 (in Excel: CSV UTF-8) and upload it again."
        ) from None


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text`, brackets inside strings not counted."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if len(brackets) <= MAX_JSON_DEPTH:
        return len(brackets)  # an upper bound, and small: no need to walk it
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _json_sample(text: str) -> pl.DataFrame:
    if json_depth(text) > MAX_JSON_DEPTH:
        raise SampleError(
            f"The JSON sample is nested more than {MAX_JSON_DEPTH} levels deep; "
            "records are a list of flat objects."
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SampleError(
            f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from exc
    except RecursionError as exc:  # nesting the depth check could not see; kept as a guard
        raise SampleError("Invalid JSON: nested too deeply.") from exc
    except ValueError as exc:
        # json.loads turns digits into an int, and Python caps how many it converts.
        limit = sys.get_int_max_str_digits()
        reason = f"a number has more than {limit} digits" if "digits" in str(exc) else exc
        raise SampleError(f"Invalid JSON: {reason}.") from exc
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
    null: bool = False


@dataclass
class SampleRow:
    key: str | None
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


@dataclass(frozen=True)
class RowProblem:
    field: str  # the FieldMapping form field the problem belongs to ("" for the whole row)
    message: str  # a sentence for the row's author


def row_problem(spec: MappingSpec) -> RowProblem | None:
    """What stops the engine from running this row, in words; None when it can run.

    The FieldMapping form refuses these, and Try on samples skips a stored row that has one
    (saved by an import or before the form checked), so both say the same thing.
    """
    return _plan(spec)[1]


def _plan(spec: MappingSpec) -> tuple[FieldPlan | None, RowProblem | None]:
    if spec.max_length is not None and spec.max_length < 1:
        return None, RowProblem(
            "max_length", "The max length must be at least 1; leave it empty for no limit."
        )
    try:
        return plan_field(spec), None
    except RuleError as exc:
        return None, RowProblem("rule", f"Rule error: {RuleError(exc.message, exc.position)}.")
    except ValueError as exc:
        # Only a refused row pays for working out which of its values is at fault.
        return None, _default_problem(spec) or RowProblem("", f"{exc}.")


def _default_problem(spec: MappingSpec) -> RowProblem | None:
    if spec.null_rule != "default":
        return None
    # The target type as the engine sees it: a decimal's scale follows the rule.
    target = target_type_of(spec, output_type(parse(spec.rule)))
    if spec.null_default == "" and target.kind != "string":
        return RowProblem(
            "null_default",
            f"Give the default value: an empty value is not a valid {target.kind}.",
        )
    try:
        default = tf.literal_as(spec.null_default, target)
    except ValueError as exc:
        return RowProblem("null_default", f"The default value {exc}.")
    if target.kind == "string" and spec.max_length and len(default) > spec.max_length:
        return RowProblem(
            "null_default",
            f"The default value is {len(default)} characters; the max length is {spec.max_length}.",
        )
    return None


def _clause(sentence: str) -> str:
    return sentence[:1].lower() + sentence[1:].rstrip(".")


def runnable(rows) -> tuple[CompiledMapping | None, list[str]]:
    """The rows the engine can run, compiled (None if there are none), and each other row
    with why it cannot. `rows` are FieldMapping rows (or anything with their attributes)."""
    plans: list[FieldPlan] = []
    skipped: list[str] = []
    sources: dict[str, str] = {}
    for row in rows:
        spec = spec_of(row)
        plan, problem = _plan(spec)
        if problem is None and spec.target_field in sources:
            # The form refuses a second row for a target; an import or a race may not have.
            problem = RowProblem(
                "target_field",
                f"{spec.target_field} is already mapped from {sources[spec.target_field]}",
            )
        if plan is not None and problem is None:
            sources[spec.target_field] = spec.source_field
            plans.append(plan)
        else:
            skipped.append(
                f"{spec.source_field} → {spec.target_field} ({_clause(problem.message)})"
            )
    return (CompiledMapping(plans) if plans else None), skipped


def try_mapping(
    mapping: CompiledMapping | list[MappingSpec], frame: pl.DataFrame, key: str | None = None
) -> SampleResult:
    """Run the mapping on the sample; each cell holds the transformed value or the violation."""
    if not isinstance(mapping, CompiledMapping):
        try:
            mapping = compile_mapping(mapping)
        except ValueError as exc:
            raise SampleError(f"The mapping cannot run: {exc}") from exc
    specs = mapping.specs
    # Every column a rule reads (concat names others than its source field); absent ones are
    # null, and listed as missing.
    needed = set().union(*(plan.fields for plan in mapping.plans))
    missing = sorted(f for f in needed if f not in frame.columns)
    for name in missing:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    # The record counter must not collide with a column of the sample.
    counter = "__row"
    while counter in frame.columns:
        counter = f"_{counter}"
    key = key if key in frame.columns else counter
    frame = frame.with_row_index(counter, offset=1).with_columns(pl.col(counter).cast(pl.String))
    try:
        report = mapping.validate(frame, key, max_examples=MAX_SAMPLE_ROWS)
    except (ValueError, pl.exceptions.PolarsError) as exc:
        # The plans are sound; should the sample still trip the engine, the user gets the
        # reason instead of an error page.
        log.exception("sample run failed")
        raise SampleError(f"The mapping could not run on this sample: {exc}") from exc
    # A violating cell shows the source value that failed, with the reason.
    reasons: dict[tuple[str, str], SampleCell] = {}
    # Keyed as the output column reads (None for a null key), so a null key's violations
    # land on its row.
    for v in report.examples:
        k = None if v.key is None else str(v.key)
        reasons.setdefault((k, v.field), SampleCell(v.value or "", v.reason, v.value is None))
    targets = [s.target_field for s in specs]
    rows = []
    keys = report.output[key].cast(pl.String).to_list()
    columns = {t: report.output[t].cast(pl.String).to_list() for t in targets}
    for i, k in enumerate(keys):
        cells = [
            reasons.get((k, t))
            or (SampleCell("", null=True) if columns[t][i] is None else SampleCell(columns[t][i]))
            for t in targets
        ]
        rows.append(SampleRow(k, cells))
    return SampleResult(targets, rows, report.violations, missing)
