"""The stages of a validation run as plain functions over connectors and polars frames.

Each stage returns a StageResult and never raises for a problem of the systems or the data:
a system that is unreachable or times out fails its own stage with the error, and later
stages that need it are skipped with the reason, while the other side still reports.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from planner.connectors import ConnectionReport, Connector, ConnectorError
from planner.connectors.base import json_safe
from planner.mapping.engine import CompiledMapping, FieldPlan, ValidationReport, plan_field
from planner.mapping.specs import spec_of
from planner.mapping.tolerance import Tolerance, parse_tolerance
from planner.models import FieldMapping, RunStage, System, SystemEndpoint
from planner.runs.endpoints import endpoint_of, open_endpoint
from planner.runs.reconcile import ReconcileReport, reconcile

MAX_EXAMPLES = 10  # per rule and reason, and per compared field
MAX_KEYS = 20  # missing / extra keys kept in the stored summary
HEAD_ROWS = 200  # rows read to learn column types in the schema check

PASSED, FAILED, SKIPPED = RunStage.Status.PASSED, RunStage.Status.FAILED, RunStage.Status.SKIPPED

Fetch = Callable[["Side"], pl.DataFrame]


@dataclass
class StageResult:
    status: str
    figures: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


@dataclass
class Side:
    """One system as a run sees it: its connector (or why there is none) and what was read."""

    role: str  # "source", "target", "old output", "new output"
    system: System
    endpoint: SystemEndpoint | None
    connector: Connector | None = None
    error: str = ""
    report: dict[str, Any] | None = None
    head: pl.DataFrame | None = None

    @property
    def ok(self) -> bool:
        return self.connector is not None and bool(self.report and self.report.get("ok"))

    @property
    def label(self) -> str:
        return f"{self.role[0].upper()}{self.role[1:]} ({self.system.name})"

    @property
    def key(self) -> list[str]:
        return self.endpoint.key_list if self.endpoint else []

    @property
    def why_not(self) -> str:
        return (self.report or {}).get("error") or self.error or "not reachable"


def open_side(role: str, system: System, should_stop: Callable[[], bool] | None = None) -> Side:
    """`should_stop` reaches connectors that can end a request early (HTTP), so a cancelled
    run does not wait out a slow server's timeouts."""
    endpoint = endpoint_of(system)
    if endpoint is None:
        return Side(role, system, None, error=f"{system.name} has no connection settings yet.")
    try:
        connector = open_endpoint(endpoint)
    except ConnectorError as exc:
        return Side(role, system, endpoint, error=exc.message)
    if should_stop is not None and hasattr(connector, "should_stop"):
        connector.should_stop = should_stop  # type: ignore[attr-defined]
    return Side(role, system, endpoint, connector=connector)


# ---------------------------------------------------------------------------------------------
# Connectivity


def _test(side: Side) -> dict[str, Any]:
    if side.connector is None:
        return ConnectionReport(False, 0.0, error=side.error).to_dict()
    return side.connector.test().to_dict()


def connectivity(sides: list[Side]) -> StageResult:
    """Authenticate and read one record on every side, concurrently (a slow one delays none)."""
    with ThreadPoolExecutor(max_workers=len(sides)) as pool:
        reports = list(pool.map(_test, sides))
    rows = []
    for side, report in zip(sides, reports, strict=True):
        report.pop("sample", None)  # record values are not evidence of connectivity
        side.report = report
        rows.append(
            {
                "role": side.role,
                "system": side.system.name,
                "kind": side.endpoint.get_kind_display() if side.endpoint else "",
                "ok": report["ok"],
                "latency_ms": report["latency_ms"],
                "fields": len(report["fields"]),
                "error": report["error"] or "",
            }
        )
    failed = [s for s in sides if not s.ok]
    return StageResult(
        FAILED if failed else PASSED,
        {"sides": rows},
        error="; ".join(f"{s.label}: {s.why_not}" for s in failed),
    )


# ---------------------------------------------------------------------------------------------
# Schema


def kind_of(dtype: pl.DataType) -> str | None:
    """The mapping language's type family of a column (None: nothing to judge, all null)."""
    if dtype == pl.Null:
        return None
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float() or isinstance(dtype, pl.Decimal):
        return "decimal"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    return "string"


# Reading: a rule reads every source value as text, so a text column fits any declared type
# (parse failures are counted per record by the mapping stage).
_READ_FITS = {("decimal", "integer"), ("datetime", "date")}
# Writing: a text column stores any value; an integer fits a decimal, a date a datetime.
_WRITE_FITS = {("integer", "decimal"), ("date", "datetime")}


def fits(declared: str | None, actual: str | None, mode: str) -> bool:
    if not declared or actual is None or declared == actual or actual == "string":
        return True
    if mode == "read":
        return declared == "string" or (declared, actual) in _READ_FITS
    return (declared, actual) in _WRITE_FITS


def first_rows(connector: Connector, n: int = HEAD_ROWS) -> pl.DataFrame:
    batches = connector.fetch(batch_size=n)
    try:
        frame = next(iter(batches), None)
    finally:
        close = getattr(batches, "close", None)
        if close:
            close()  # ends the server-side cursor / pagination early
    if frame is None and hasattr(connector, "empty_frame"):
        # An empty table still has its columns: without them a run against an empty target
        # would fail on "no key field" instead of reporting every source row missing.
        frame = connector.empty_frame()
    return frame if frame is not None else pl.DataFrame()


def source_expectations(rows: list[FieldMapping], key: list[str]) -> dict[str, str | None]:
    expected: dict[str, str | None] = dict.fromkeys(key)
    for m in rows:
        try:
            for name in plan_field(spec_of(m)).fields:
                expected.setdefault(name, None)
        except ValueError:
            pass  # a broken rule: reported by the mapping stage
        if m.source_field:
            expected[m.source_field] = m.source_type or None
    return expected


def target_expectations(rows: list[FieldMapping], key: list[str]) -> dict[str, str | None]:
    expected: dict[str, str | None] = dict.fromkeys(key)
    for m in rows:
        if m.target_field:
            expected[m.target_field] = m.target_type or None
    return expected


def schema(checks: list[tuple[Side, dict[str, str | None], str]]) -> StageResult:
    """Do the mapped fields and keys exist on each side, and do their types fit?"""
    rows, problems = [], []
    for side, expected, mode in checks:
        entry: dict[str, Any] = {"role": side.role, "system": side.system.name, "checked": False}
        rows.append(entry)
        if not side.ok:
            entry["error"] = f"not checked: {side.why_not}"
            problems.append(f"{side.label}: not checked")
            continue
        try:
            side.head = first_rows(side.connector)  # type: ignore[arg-type]
        except ConnectorError as exc:
            entry["error"] = exc.message
            problems.append(f"{side.label}: {exc.message}")
            continue
        columns = side.head.columns or side.report["fields"]  # type: ignore[index]
        missing = [f for f in expected if f not in columns]
        issues = []
        for name, declared in expected.items():
            if name in side.head.schema:
                actual = kind_of(side.head.schema[name])
                if not fits(declared, actual, mode):
                    issues.append({"field": name, "declared": declared, "actual": actual})
        entry.update(checked=True, fields_seen=len(columns), missing=missing, type_issues=issues)
        if missing:
            problems.append(f"{side.label} has no field(s) {', '.join(missing)}")
        for i in issues:
            problems.append(
                f"{side.label}: {i['field']} is {i['actual']}, the mapping says {i['declared']}"
            )
    return StageResult(FAILED if problems else PASSED, {"sides": rows}, error="; ".join(problems))


# ---------------------------------------------------------------------------------------------
# Mapping validation


@dataclass
class MappingOutcome:
    result: StageResult
    report: ValidationReport | None = None
    plans: list[FieldPlan] = field(default_factory=list)
    source: pl.DataFrame | None = None  # the records as read, row for row with report.output


def _plans(rows: list[FieldMapping]) -> tuple[list[FieldPlan], list[dict[str, str]]]:
    plans, broken, seen = [], [], set()
    for m in rows:
        if m.target_field in seen:
            broken.append({"field": m.target_field, "error": "target field is mapped twice"})
            continue
        seen.add(m.target_field)
        try:
            plans.append(plan_field(spec_of(m)))
        except ValueError as exc:
            broken.append({"field": m.target_field, "error": str(exc)})
    return plans, broken


def _key_value(key: Any) -> Any:
    if isinstance(key, tuple):
        return [json_safe(k) for k in key]
    return json_safe(key)


def mapping(side: Side, rows: list[FieldMapping], fetch: Fetch) -> MappingOutcome:
    """The step-2 engine over every source record: violations per rule, with examples."""
    if not side.ok:
        return MappingOutcome(StageResult(SKIPPED, error=f"{side.label}: {side.why_not}"))
    if not rows:
        return MappingOutcome(
            StageResult(FAILED, error="This connection has no mapping rows yet (step 2).")
        )
    plans, broken = _plans(rows)
    frame = fetch(side)
    key_missing = [k for k in side.key if k not in frame.columns]
    if key_missing:
        return MappingOutcome(
            StageResult(FAILED, error=f"The source has no key field(s) {', '.join(key_missing)}.")
        )
    usable = []
    for plan in plans:
        absent = sorted(plan.fields - set(frame.columns))
        if absent:
            broken.append(
                {"field": plan.spec.target_field, "error": f"source has no {', '.join(absent)}"}
            )
        else:
            usable.append(plan)
    report = CompiledMapping(usable).validate(frame, side.key, max_examples=MAX_EXAMPLES)
    return mapping_outcome(report, usable, broken, frame)


def mapping_outcome(
    report: ValidationReport,
    usable: list[FieldPlan],
    broken: list[dict[str, str]],
    frame: pl.DataFrame | None = None,
) -> MappingOutcome:
    """The mapping stage's figures and examples from the engine's report (`frame`: the records
    as read, row for row with the report's output, when they were held whole)."""
    by_field = [
        {
            "target": p.spec.target_field,
            "source": p.spec.source_field,
            "rule": p.spec.rule,
            "violations": report.violations.get(p.spec.target_field, {}),
            "total": sum(report.violations.get(p.spec.target_field, {}).values()),
        }
        for p in usable
    ]
    examples = [
        {"field": v.field, "reason": v.reason, "key": _key_value(v.key), "value": v.value}
        for v in report.examples
    ]
    figures = {
        "records": report.records,
        "violations": report.total_violations,
        "fields_validated": len(usable),
        "by_field": by_field,
        "not_validated": broken,
    }
    problems = []
    if report.total_violations:
        problems.append(f"{report.total_violations:,} violation(s)")
    if broken:
        problems.append(f"{len(broken)} field(s) not validated")
    status = FAILED if problems else PASSED
    return MappingOutcome(
        StageResult(status, figures, examples, "; ".join(problems)), report, usable, frame
    )


# ---------------------------------------------------------------------------------------------
# Reconciliation (source after transformation vs target) and parallel run (old vs new output)


@dataclass
class CompareOutcome:
    result: StageResult
    report: ReconcileReport | None = None


def tolerances_of(rows: list[FieldMapping]) -> tuple[dict[str, Tolerance], list[str]]:
    """The tolerance each mapping row states, by target field, and those that do not parse."""
    out: dict[str, Tolerance] = {}
    broken = []
    for m in rows:
        try:
            tolerance = parse_tolerance(m.tolerance)
        except ValueError as exc:
            broken.append(f"{m.target_field}: {exc}")
            continue
        if tolerance is not None:
            out[m.target_field] = tolerance
    return out, broken


def _compare(
    left: pl.DataFrame,
    right: pl.DataFrame,
    key: list[str],
    fields: list[str],
    absent: list[str],
    rows: list[FieldMapping],
) -> CompareOutcome:
    tolerances, broken = tolerances_of(rows)
    report = reconcile(left, right, key, fields, max_examples=MAX_EXAMPLES, tolerances=tolerances)
    return compare_outcome(report, absent, broken)


def compare_outcome(
    report: ReconcileReport, absent: list[str], broken: list[str] | tuple = ()
) -> CompareOutcome:
    """The stage's figures, examples and verdict from a reconciliation report (`broken`: the
    tolerances that could not be applied)."""
    figures = report.summary(max_keys=MAX_KEYS)
    examples = [e for per_field in figures.pop("examples").values() for e in per_field]
    figures["not_compared"] = absent
    problems = [f"tolerance not applied ({b})" for b in broken]
    for label, n in (
        ("missing in target", report.missing_in_target.height),
        ("extra in target", report.extra_in_target.height),
        ("with differing fields", report.mismatched_count),
    ):
        if n:
            problems.append(f"{n:,} {label}")
    status = PASSED if report.ok else FAILED
    return CompareOutcome(StageResult(status, figures, examples, "; ".join(problems)), report)


def is_identity(plan: FieldPlan) -> bool:
    """A rule that passes one source field through unchanged."""
    return bool(plan.spec.source_field) and all(
        call.name == "identity" for call in plan.pipeline.steps
    )


def as_read(output: pl.DataFrame, source: pl.DataFrame | None, plans) -> pl.DataFrame:
    """The mapping's output, with identity fields holding the source value as it was read.

    The engine reads every value as text and parses it into the target type (a decimal
    without number(n) gets 6 places, a timestamp whole seconds), which would make two
    identical tables differ. An identity rule promises the value unchanged, so the value
    as read is what is compared (a value the rule rejects is counted by the mapping stage;
    whether the target holds it is still this stage's question). Where the engine filled a
    default for a null, the default is kept.
    """
    if source is None or source.height != output.height:
        return output
    originals, replaced = [], []
    for i, plan in enumerate(plans):
        name, read = plan.spec.target_field, plan.spec.source_field
        if not is_identity(plan) or read not in source.columns or name not in output.columns:
            continue
        original = f"__read{i}"
        dtype = source.schema[read]
        if dtype == pl.Null:
            # Nothing was read (a chunk of nulls has no type): the engine's output, defaults
            # included, is the value; a cast to Null would erase the defaults.
            continue
        originals.append(source.get_column(read).alias(original))
        out, raw = pl.col(name), pl.col(original)
        replaced.append(
            pl.when(raw.is_null()).then(out.cast(dtype, strict=False)).otherwise(raw).alias(name)
        )
    if not replaced:
        return output
    return output.hstack(originals).with_columns(replaced).drop(s.name for s in originals)


def target_key_columns(
    source: Side, target: Side, targets: list[str], key_out: list[str]
) -> dict[str, pl.Expr] | CompareOutcome:
    """How the mapping's output yields each of the target's key fields (or why it cannot)."""
    columns: dict[str, pl.Expr] = {}
    for name in target.key:
        if name in targets:
            columns[name] = pl.col(name)
        elif name in source.key:
            columns[name] = pl.col(key_out[source.key.index(name)])
        else:
            return CompareOutcome(
                StageResult(
                    FAILED,
                    error=f"The target's key field '{name}' is not produced by the mapping: map a"
                    " source field to it, or give both systems the same key field name.",
                )
            )
    return columns


def reconciliation(
    source: Side, target: Side, mapped: MappingOutcome, fetch: Fetch, rows: list[FieldMapping]
) -> CompareOutcome:
    if mapped.report is None:
        return CompareOutcome(StageResult(SKIPPED, error="needs the mapping stage's output"))
    if not target.ok:
        return CompareOutcome(StageResult(SKIPPED, error=f"{target.label}: {target.why_not}"))
    if not target.key:
        return CompareOutcome(StageResult(FAILED, error="The target has no key field set."))
    output = as_read(mapped.report.output, mapped.source, mapped.plans)
    key_out = mapped.report.key_columns
    targets = [p.spec.target_field for p in mapped.plans]
    columns = target_key_columns(source, target, targets, key_out)
    if isinstance(columns, CompareOutcome):
        return columns
    frame = fetch(target)
    key_missing = [k for k in target.key if k not in frame.columns]
    if key_missing:
        return CompareOutcome(
            StageResult(FAILED, error=f"The target has no key field(s) {', '.join(key_missing)}.")
        )
    wanted = [t for t in targets if t not in target.key]
    fields = [t for t in wanted if t in frame.columns]
    absent = [t for t in wanted if t not in frame.columns]
    transformed = output.select(
        *[expr.alias(name) for name, expr in columns.items()], *[pl.col(f) for f in fields]
    )
    return _compare(transformed, frame, target.key, fields, absent, rows)


def parallel(old: Side, new: Side, rows: list[FieldMapping], fetch: Fetch) -> CompareOutcome:
    """The old process's output vs the new one's, by the target's key, over mapped fields."""
    for side in (old, new):
        if not side.ok:
            return CompareOutcome(StageResult(SKIPPED, error=f"{side.label}: {side.why_not}"))
    key = new.key
    if not key:
        return CompareOutcome(StageResult(FAILED, error="The target has no key field set."))
    old_frame, new_frame = fetch(old), fetch(new)
    for side, frame in ((old, old_frame), (new, new_frame)):
        missing = [k for k in key if k not in frame.columns]
        if missing:
            return CompareOutcome(
                StageResult(FAILED, error=f"{side.label} has no key field(s) {', '.join(missing)}.")
            )
    wanted = list(dict.fromkeys(m.target_field for m in rows if m.target_field not in key))
    both = set(old_frame.columns) & set(new_frame.columns)
    fields = [f for f in wanted if f in both]
    absent = [f for f in wanted if f not in both]
    return _compare(old_frame, new_frame, key, fields, absent, rows)
