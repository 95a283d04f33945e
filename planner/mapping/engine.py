"""Vectorised validation of records against a data mapping, with polars.

Each target field's rule compiles to a list of ops. An op turns the field's current
value column into a new column and may flag rows with a violation code. The ops of
all fields run as the stages of one lazy query (stage k applies op k of every
field); an op's violation check runs one stage later, on the materialised input and
output columns, so no expensive expression is ever evaluated twice. Fields whose
source and ops agree share columns.

The first violation of a row wins; the value of a violating row is null in the
output. Semantics are mirrored row by row in reference.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import polars as pl

from planner.mapping import transforms as tf
from planner.mapping.rules import (
    Call,
    FieldRef,
    Pipeline,
    RuleError,
    Star,
    StepType,
    check,
    format_rule,
    infer_types,
    output_type,
    parse,
    with_field,
)
from planner.mapping.transforms import REASON_CODE, ValueType

NULL_RULES = ("reject", "default", "skip")


@dataclass
class MappingSpec:
    source_field: str
    target_field: str
    source_type: str  # descriptive only: every source value enters the rule as text
    target_type: str
    max_length: int | None
    required: bool
    null_rule: str  # "reject" | "default" | "skip"
    null_default: str = ""
    rule: str = ""


@dataclass(frozen=True)
class Violation:
    key: object  # the key value, or a tuple of them for a composite key
    field: str  # target field
    value: str | None  # source value as text (None when it was null)
    reason: str


@dataclass
class ValidationReport:
    records: int
    violations: dict[str, dict[str, int]]  # every target field, {} when clean
    examples: list[Violation]
    output: pl.DataFrame
    key_columns: list[str] = field(default_factory=list)  # key names in output

    @property
    def total_violations(self) -> int:
        return sum(sum(reasons.values()) for reasons in self.violations.values())

    @property
    def ok(self) -> bool:
        return self.total_violations == 0


# --- compiled form, shared with the reference ---------------------------------------


@dataclass(frozen=True)
class FieldPlan:
    spec: MappingSpec
    pipeline: Pipeline
    steps: tuple[StepType, ...]
    result: ValueType  # what the rule produces
    target: ValueType  # target type (decimal scale follows the rule)
    default: object  # null_default as a target value, when null_rule == "default"

    @property
    def rejects_null(self) -> bool:
        return self.spec.required or self.spec.null_rule == "reject"

    @property
    def fields(self) -> set[str]:
        """Source columns the rule reads."""
        refs = {self.spec.source_field} if self.spec.source_field else set()
        for call in self.pipeline.steps:
            refs |= {a.name for a in call.args if isinstance(a, FieldRef)}
        return refs


def target_type_of(spec: MappingSpec, result: ValueType) -> ValueType:
    if spec.target_type != "decimal":
        return ValueType(spec.target_type)
    if result.kind == "decimal":
        return result
    return ValueType("decimal", 0 if result.kind == "integer" else tf.FULL_SCALE)


def plan_field(spec: MappingSpec) -> FieldPlan:
    if spec.target_type not in tf.KINDS:
        raise ValueError(f"{spec.target_field}: unknown target type {spec.target_type!r}")
    if spec.null_rule not in NULL_RULES:
        raise ValueError(f"{spec.target_field}: null_rule must be one of {NULL_RULES}")
    if spec.max_length is not None and spec.max_length < 1:
        raise ValueError(f"{spec.target_field}: max_length must be positive")
    errors = check(spec.rule, target_type=spec.target_type)
    if errors:
        raise with_field(errors[0], spec.target_field)
    pipeline = parse(spec.rule)
    result = output_type(pipeline)
    target = target_type_of(spec, result)
    default = None
    if spec.null_rule == "default":
        try:
            default = tf.literal_as(spec.null_default, target)
        except ValueError as e:
            raise ValueError(f"{spec.target_field}: null_default {e}") from None
        if target.kind == "string" and spec.max_length and len(default) > spec.max_length:  # type: ignore[arg-type]
            raise ValueError(f"{spec.target_field}: null_default is longer than max_length")
    return FieldPlan(spec, pipeline, tuple(infer_types(pipeline)), result, target, default)


def plan_mapping(specs: list[MappingSpec]) -> list[FieldPlan]:
    seen: set[str] = set()
    for spec in specs:
        if spec.target_field in seen:
            raise ValueError(f"target field {spec.target_field!r} is mapped twice")
        seen.add(spec.target_field)
    return [plan_field(spec) for spec in specs]


# --- polars building blocks ---------------------------------------------------------

_DTYPES = {
    "string": pl.String,
    "integer": pl.Int64,
    "boolean": pl.Boolean,
    "date": pl.Date,
    "datetime": pl.Datetime("us"),
}
_LIMIT_DIGITS = len(str(tf.DECIMAL_LIMIT)) - 1  # 18


def dtype_of(vt: ValueType) -> pl.DataType:
    if vt.kind == "decimal":
        return pl.Decimal(38, vt.scale)
    return _DTYPES[vt.kind]


def to_decimal(v: pl.Expr, scale: int, digits: int = _LIMIT_DIGITS) -> pl.Expr:
    """Number -> Decimal(38, scale), half to even; null if |v| >= 10^digits.

    Casting through a precision of digits + scale gives the range check for free.
    """
    return v.cast(pl.Decimal(digits + scale, scale), strict=False).cast(pl.Decimal(38, scale))


# polars reads exponents close to 2^31 as zero instead of overflowing; the language
# stops at 9 exponent digits. Only text of 12+ bytes can hold such an exponent, so
# the regex runs on (almost) nothing.
_BIG_EXPONENT = r"[eE][+-]?0*[1-9][0-9]{9}"


def parse_decimal(v: pl.Expr, scale: int, digits: int = _LIMIT_DIGITS) -> pl.Expr:
    """Text -> Decimal(38, scale): polars' cast grammar is exactly DECIMAL_PATTERN."""
    long_text = pl.when(v.str.len_bytes() >= 12).then(v)
    too_big = long_text.str.contains(_BIG_EXPONENT)
    return pl.when(too_big).then(None).otherwise(to_decimal(v, scale, digits))


def _lit(value: object, vt: ValueType) -> pl.Expr:
    return pl.lit(value, dtype=dtype_of(vt))


def text_of(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Canonical text of a column of any supported dtype (see transforms.to_text)."""
    if dtype == pl.String:
        return expr
    if dtype == pl.Date:
        return expr.dt.strftime("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone("UTC")
        # Microseconds are part of the value: whole seconds alone would make it differ.
        whole = expr.dt.strftime(tf.ISO_DATETIME_TEXT)
        fraction = expr.dt.strftime(tf.ISO_DATETIME_FRACTION_TEXT)
        return pl.when(expr.dt.microsecond() == 0).then(whole).otherwise(fraction)
    if isinstance(dtype, pl.Decimal) and dtype.scale == tf.FULL_SCALE:
        return trim_zeros(expr.cast(pl.String))
    if (
        dtype.is_numeric()
        or dtype in (pl.Boolean, pl.Null)
        or isinstance(dtype, pl.Enum | pl.Categorical)
    ):
        return expr.cast(pl.String)
    raise ValueError(f"unsupported column type {dtype}")


def trim_zeros(text: pl.Expr) -> pl.Expr:
    """tf.trim_zeros on a column of decimal text."""
    return text.str.replace(r"^(-?[0-9]+)\.([0-9]*?)0+$", "${1}.${2}").str.strip_suffix(".")


def _case_variants(word: str) -> list[str]:
    variants = [""]
    for c in word:
        variants = [v + x for v in variants for x in dict.fromkeys((c.lower(), c.upper()))]
    return variants


# Every ASCII spelling of the boolean words: one hash lookup instead of lower + lookup.
_BOOL_KEYS = [v for word in tf.BOOLEAN_WORDS for v in _case_variants(word)]
_BOOL_VALUES = [tf.BOOLEAN_WORDS[v.lower()] for v in _BOOL_KEYS]


def parse_date(v: pl.Expr, fmt: tf.DateFormat, kind: str) -> pl.Expr:
    # The regex admits exactly the reference's grammar (chrono alone is laxer, e.g.
    # about leading spaces and leap seconds); chrono then rejects impossible
    # calendar dates such as Feb 30, as Python's datetime does.
    if fmt.has_time or kind == "datetime":
        parsed = v.str.strptime(pl.Datetime("us"), fmt.text, strict=False, cache=False)
        if kind == "date":
            parsed = parsed.dt.date()
    else:
        parsed = v.str.strptime(pl.Date, fmt.text, strict=False, cache=False)
    return pl.when(v.str.contains(tf.anchored(fmt.pattern))).then(parsed)


def parse_text(v: pl.Expr, vt: ValueType) -> pl.Expr:
    """Text -> vt; null for empty text and for text that does not parse."""
    if vt.kind == "integer":
        return v.cast(pl.Int64, strict=False)  # polars' grammar is exactly INT_PATTERN
    if vt.kind == "decimal":
        return parse_decimal(v, vt.scale)
    if vt.kind == "boolean":
        return v.replace_strict(_BOOL_KEYS, _BOOL_VALUES, default=None, return_dtype=pl.Boolean)
    formats = (tf.ISO_DATE,) if vt.kind == "date" else tf.ISO_DATETIMES
    if len(formats) == 1:
        return parse_date(v, formats[0], vt.kind)
    return pl.coalesce([*(parse_date(v, fmt, vt.kind) for fmt in formats), parse_stamp(v)])


def parse_stamp(v: pl.Expr) -> pl.Expr:
    """An ISO timestamp with a fraction and/or an offset -> naive UTC (tf.STAMP_PATTERN).

    The text is brought to one shape (space separator, a +HH:MM offset, +00:00 when none)
    so one chrono format reads every spelling; the regex admits only the reference's grammar.
    """
    shaped = v.str.replace("T", " ", literal=True)
    shaped = shaped.str.replace(r"Z$", "+00:00")
    shaped = shaped.str.replace(r"([+-][0-9]{2})([0-9]{2})$", "${1}:${2}")
    shaped = shaped.str.replace(r"([+-][0-9]{2})$", "${1}:00")
    has_offset = shaped.str.contains(r"[+-][0-9]{2}:[0-9]{2}$")
    shaped = pl.when(has_offset).then(shaped).otherwise(shaped + "+00:00")
    parsed = shaped.str.to_datetime(
        "%Y-%m-%d %H:%M:%S%.f%:z", time_unit="us", time_zone="UTC", strict=False
    ).dt.replace_time_zone(None)
    in_range = parsed.dt.year().is_between(1, 9999)  # an offset may cross year 1 or 9999
    return pl.when(v.str.contains(tf.anchored(tf.STAMP_PATTERN)) & in_range).then(parsed)


# --- ops ----------------------------------------------------------------------------
# An op maps the current value column to a new one. Its fail check runs in a later
# stage on the two materialised columns, so no expensive expression is evaluated
# twice. `key` identifies what the op computes: fields whose source and op keys
# agree share columns (three targets fed by number(2) on one column parse it once).

type Fail = Callable[[pl.Expr, pl.Expr], pl.Expr]  # (input, output) -> violation?


@dataclass(frozen=True)
class Op:
    key: tuple
    value: Callable[[pl.Expr], pl.Expr] | None  # None: the value is unchanged
    fail: Fail | None = None
    reason: str = ""
    cost: int = 2  # rough CPU cost, in units of 10 ms per million rows


def _parse_failed(old: pl.Expr, new: pl.Expr) -> pl.Expr:
    return (old != "") & new.is_null()


def _became_null(old: pl.Expr, new: pl.Expr) -> pl.Expr:
    return old.is_not_null() & new.is_null()


def _check(key: tuple, fail: Callable[[pl.Expr], pl.Expr], reason: str, cost: int = 0) -> Op:
    return Op(key, None, lambda old, new: fail(old), reason, cost)  # the check is the work


def parse_op(vt: ValueType, reason: str = "type_mismatch") -> Op:
    cost = {"integer": 1, "decimal": 3, "boolean": 3}.get(vt.kind, 5)
    return Op(("parse", vt), lambda v: parse_text(v, vt), _parse_failed, reason, cost)


def convert_ops(src: ValueType, dst: ValueType) -> list[Op]:
    """Implicit conversion (rules.can_convert) as ops; failures are type_mismatch."""
    if src == dst:
        return []
    if dst.kind == "string":
        cost = 8 if src.kind in ("date", "datetime") else 2
        return [Op(("text", src), lambda v: text_of(v, dtype_of(src)), cost=cost)]
    if src.kind == "string":
        return [parse_op(dst)]
    if dst.kind == "decimal":
        return [
            Op(
                ("decimal", dst),
                lambda v: to_decimal(v, dst.scale),
                _became_null,
                "type_mismatch",
                0,
            )
        ]
    if dst.kind == "integer":  # from decimal: whole numbers only

        def whole(v: pl.Expr) -> pl.Expr:
            return pl.when(v.cast(pl.Int64).cast(dtype_of(src)) == v).then(v.cast(pl.Int64))

        return [Op(("whole",), whole, _became_null, "type_mismatch", 0)]
    if dst.kind == "datetime":
        return [Op(("datetime",), lambda v: v.cast(pl.Datetime("us")), cost=0)]
    return [Op(("date",), lambda v: v.dt.date(), cost=0)]


class _Compiler:
    """Builds the ops of one field, given the input columns' dtypes."""

    def __init__(self, schema: pl.Schema) -> None:
        self.schema = schema

    def field(self, name: str) -> pl.Expr:
        return text_of(pl.col(name), self.schema[name])

    def arg(self, value: object) -> pl.Expr:
        if isinstance(value, FieldRef):
            return self.field(value.name)
        return pl.lit(tf.literal_text(value), dtype=pl.String)

    def ops(self, plan: FieldPlan) -> list[Op]:
        spec = plan.spec
        ops: list[Op] = []
        if spec.source_field and self.schema[spec.source_field] != pl.String:
            dtype = self.schema[spec.source_field]
            ops.append(Op(("text", repr(dtype)), lambda v: text_of(v, dtype)))
        current = ValueType("string")
        for call, step in zip(plan.pipeline.steps, plan.steps, strict=True):
            if call.name != "concat":
                ops += convert_ops(current, step.given)
            ops += self.step(call, step)
            current = step.result
        ops += convert_ops(current, plan.target)
        if plan.target.kind == "string" and spec.max_length is not None:
            n = spec.max_length
            ops.append(_check(("max", n), lambda v: v.str.len_chars() > n, "too_long"))
        if plan.default is not None:
            fill = _lit(plan.default, plan.target)
            ops.append(Op(("fill", plan.target, plan.default), lambda v: v.fill_null(fill), cost=1))
        if plan.rejects_null:
            ops.append(_check(("notnull",), lambda v: v.is_null(), "null_not_allowed"))
        return ops

    def step(self, call: Call, step: StepType) -> list[Op]:  # noqa: C901, PLR0911
        name, args, kwargs = call.name, call.args, call.kwargs
        given, result = step.given, step.result
        # Canonical text, not the args tuple: True == 1 == Decimal("1.0") in Python.
        key = (format_rule(Pipeline((call,))), given, result)
        if name == "identity":
            return []
        if name == "trim":
            return [Op(key, lambda v: v.str.strip_chars())]  # = transforms.TRIM_CHARS
        if name == "lower":
            return [Op(key, lambda v: v.str.to_lowercase())]
        if name == "upper":
            return [Op(key, lambda v: v.str.to_uppercase())]
        if name == "replace":
            return [Op(key, lambda v: v.str.replace_all(args[0], args[1], literal=True))]
        if name == "substr":
            length = args[1] if len(args) > 1 else None
            return [Op(key, lambda v: v.str.slice(args[0], length))]
        if name == "split":
            sep, index = args
            if index >= 0:  # split_exact skips building lists
                return [
                    Op(key, lambda v: v.str.split_exact(sep, index).struct.field(f"field_{index}"))
                ]
            return [Op(key, lambda v: v.str.split(sep).list.get(index, null_on_oob=True))]
        if name == "concat":
            parts = [self.arg(a) for a in args]
            return [Op(key, lambda v: pl.concat_str(parts, ignore_nulls=False))]
        if name == "default":
            fill = _lit(tf.literal_as(args[0], given), given)
            if given.kind == "string" and args[0] != "":  # default("") is just fill_null
                return [Op(key, lambda v: pl.when(v.is_null() | (v == "")).then(fill).otherwise(v))]
            return [Op(key, lambda v: v.fill_null(fill), cost=1)]
        if name == "map":
            return [self.map(key, kwargs, result)]
        if name in ("number", "integer", "boolean"):
            return [parse_op(result)]
        if name in ("date", "datetime"):
            if not args:
                return [parse_op(result, "bad_date")]
            fmt = tf.compile_date_format(args[0])
            return [Op(key, lambda v: parse_date(v, fmt, name), _parse_failed, "bad_date", 5)]
        if name == "epoch":
            return [Op(key, lambda v: v.dt.epoch("s"), cost=0)]
        if name == "format_date":
            return [Op(key, lambda v: v.cast(pl.Datetime("us")).dt.strftime(args[0]), cost=8)]
        if name == "currency":
            return [self.currency(key, args[2], result)]
        if name == "max_length":
            return [_check(key, lambda v: v.str.len_chars() > args[0], "too_long")]
        if name == "regex":
            return [_check(key, lambda v: ~v.str.contains(args[0]), "regex_mismatch", 3)]
        if name == "reject_if_empty":
            if given.kind == "string":
                return [_check(key, lambda v: v.is_null() | (v == ""), "rejected")]
            return [_check(key, lambda v: v.is_null(), "rejected")]
        raise AssertionError(f"no engine op for {name}")

    def map(self, key: tuple, kwargs: tuple, result: ValueType) -> Op:
        keys, values = [], []
        fallback: object = FieldRef("reject")  # no * at all means *=reject
        for k, value in kwargs:
            if isinstance(k, Star):
                fallback = value
                continue
            keys.append(tf.literal_text(k))
            values.append(None if value is None else tf.literal_as(value, result))
        dtype = dtype_of(result)
        new = pl.Series(values, dtype=dtype)
        if fallback == FieldRef("keep"):
            return Op(key, lambda v: v.replace_strict(keys, new, default=v, return_dtype=dtype))
        rejects = fallback == FieldRef("reject")
        default = None if rejects or fallback is None else tf.literal_as(fallback, result)

        def value(v: pl.Expr) -> pl.Expr:
            mapped = v.replace_strict(keys, new, default=_lit(default, result), return_dtype=dtype)
            return (
                mapped if default is None else pl.when(v.is_not_null()).then(mapped)
            )  # null stays null

        if not rejects:
            return Op(key, value)
        if None in values:  # a null result can't tell "mapped to null" from "unmapped"
            return Op(key, value, lambda old, new: ~old.is_in(keys), "unmapped_value")
        return Op(key, value, _became_null, "unmapped_value")

    def currency(self, key: tuple, rate: object, result: ValueType) -> Op:
        if isinstance(rate, FieldRef):
            text = self.field(rate.name)
            parsed = parse_decimal(text, tf.RATE_SCALE, digits=9)  # |rate| < 10^9
            present = text != ""
        else:
            parsed = pl.lit(Decimal(rate), dtype=pl.Decimal(38, tf.RATE_SCALE))  # type: ignore[arg-type]
            present = pl.lit(True)

        def value(v: pl.Expr) -> pl.Expr:
            # polars multiplies exactly and rounds half to even to the rate's 9
            # places; the cast then rounds to the result scale and bounds the range.
            return to_decimal(v * parsed, result.scale)

        return Op(key, value, lambda old, new: _became_null(old, new) & present, "type_mismatch")


# --- running ------------------------------------------------------------------------

# Low-cardinality columns (statuses, countries, flags, dates) are evaluated once per
# distinct value and the results gathered back by row: a pipeline costs the same
# for 10 distinct values as for 1, whatever the row count. It only applies to
# fields that read nothing but their source column, so the result is identical.
# Finding the distinct values and gathering results back costs about three passes
# over the column, so it only pays for costly pipelines on repetitive columns.
DISTINCT_MIN_ROWS = 50_000
DISTINCT_MIN_COST = 6  # summed Op.cost of the fields sharing the column
DISTINCT_RATIO = 0.05  # at most this share of distinct values
DISTINCT_HEAD_RATIO = 0.9  # skip without a full look when the first rows are this distinct


def _keys(key: str | list[str]) -> list[str]:
    return [key] if isinstance(key, str) else list(key)


def _possible_codes(ops: list[Op]) -> list[int]:
    return sorted({REASON_CODE[o.reason] for o in ops if o.fail})


def _stages(
    lf: pl.LazyFrame, sources: list[str], ops: list[list[Op]], codes: list[str], keep: set[str]
) -> tuple[pl.LazyFrame, list[str]]:
    """Chain the ops of all fields as with_columns stages; returns (lf, value columns)."""
    current = list(sources)
    columns = set(lf.collect_schema().names())
    chain: list[tuple] = [(c,) for c in current]  # what each value column was computed as
    names: dict[tuple, str] = {}
    pending: list[tuple[int, Op, str, str]] = []  # (field, op, input, output) to check
    for stage in range(max(map(len, ops), default=0) + 1):
        exprs: dict[str, pl.Expr] = {}
        for i, op, old, new in pending:
            r, code = pl.col(codes[i]), pl.lit(REASON_CODE[op.reason], pl.UInt8)
            hit = (r == 0) & op.fail(pl.col(old), pl.col(new))  # type: ignore[misc]
            exprs[codes[i]] = pl.when(hit).then(code).otherwise(r)
        pending = []
        for i, field_ops in enumerate(ops):
            if stage >= len(field_ops):
                continue
            op, old = field_ops[stage], current[i]
            if op.value is not None:
                chain[i] = (chain[i], op.key)
                current[i] = names.setdefault(chain[i], f"__c{len(names)}")
                if current[i] not in columns:
                    exprs.setdefault(current[i], op.value(pl.col(old)))
            if op.fail is not None:
                pending.append((i, op, old, current[i]))
        lf = lf.with_columns(**exprs) if exprs else lf
        columns |= set(exprs)
        live = keep | set(current) | set(codes) | {c for p in pending for c in p[2:]}
        if columns - live:
            lf = lf.drop(sorted(columns - live))
            columns &= live
    return lf, current


def _execute(
    df: pl.DataFrame,
    plans: list[FieldPlan],
    ops: list[list[Op]],
    keys: list[str],
    key_out: list[str],
    shortcuts: Shortcuts | None = None,
) -> pl.DataFrame:
    """Key columns, one output column per target and one code column "__r<i>" each."""
    indexes, shortcuts = shortcuts or ({}, {})
    needed = set(keys).union(*(p.fields for p in plans))
    codes = [f"__r{i}" for i in range(len(plans))]
    sources = [
        f"__d{i}" if i in shortcuts else p.spec.source_field or "__null"
        for i, p in enumerate(plans)
    ]
    lf = df.lazy().select(
        *[pl.col(c) for c in sorted(needed)], pl.lit(None, pl.String).alias("__null"), **indexes
    )
    lf = lf.with_columns(
        *[value.alias(f"__d{i}") for i, (value, _) in shortcuts.items()],
        *[
            shortcuts[i][1].alias(c) if i in shortcuts else pl.lit(0, pl.UInt8).alias(c)
            for i, c in enumerate(codes)
        ],
    ).drop(list(indexes))
    run_ops = [[] if i in shortcuts else field_ops for i, field_ops in enumerate(ops)]
    lf, current = _stages(lf, sources, run_ops, codes, needed | {"__null"})
    return lf.select(
        *[pl.col(k).alias(o) for k, o in zip(keys, key_out, strict=True)],
        *[
            # A violating row's value is null.
            pl.when(pl.col(code) == 0)
            .then(pl.col(value))
            .cast(dtype_of(p.target))
            .alias(p.spec.target_field)
            for p, value, code in zip(plans, current, codes, strict=True)
        ],
        *codes,
    ).collect()


# (index columns to compute first, {field: (value expr, code expr)} using them)
type Shortcuts = tuple[dict[str, pl.Expr], dict[int, tuple[pl.Expr, pl.Expr]]]


def _distinct_shortcuts(df: pl.DataFrame, plans: list[FieldPlan], ops: list[list[Op]]) -> Shortcuts:
    """Fields worth evaluating per distinct value, with the gather that maps them back."""
    indexes: dict[str, pl.Expr] = {}
    out: dict[int, tuple[pl.Expr, pl.Expr]] = {}
    if df.height < DISTINCT_MIN_ROWS:
        return indexes, out
    groups: dict[str, list[int]] = {}
    for i, plan in enumerate(plans):
        source = plan.spec.source_field
        if source and plan.fields == {source} and df.schema[source] == pl.String:
            groups.setdefault(source, []).append(i)
    for source, members in groups.items():
        # Distinct values, index and gathers cost about three string ops (6 units).
        if sum(op.cost for i in members for op in ops[i]) < DISTINCT_MIN_COST:
            continue
        column = df[source]
        head = column.head(2_000)
        seen = head.n_unique()
        if seen > DISTINCT_HEAD_RATIO * len(head):  # ids, e-mails: don't bother
            continue
        if seen > 0.1 * len(head) and column.approx_n_unique() > DISTINCT_RATIO * df.height:
            continue  # the head looked repetitive, the whole column is not (HyperLogLog)
        categories = column.unique(maintain_order=True).drop_nulls()
        if not 0 < len(categories) <= DISTINCT_RATIO * df.height:
            continue
        small = pl.concat([categories, pl.Series([None], dtype=pl.String)]).to_frame(source)
        result = _execute(small, [plans[i] for i in members], [ops[i] for i in members], [], [])
        # An Enum's physical value is the category's position; null is the extra last row.
        name = f"__i{len(indexes)}"
        indexes[name] = (
            pl.col(source).cast(pl.Enum(categories)).to_physical().fill_null(len(categories))
        )
        for n, i in enumerate(members):
            value = result[plans[i].spec.target_field]
            out[i] = (
                pl.lit(value).gather(pl.col(name)),
                pl.lit(result[f"__r{n}"]).gather(pl.col(name)),
            )
    return indexes, out


@dataclass
class CompiledMapping:
    plans: list[FieldPlan]

    @property
    def specs(self) -> list[MappingSpec]:
        return [p.spec for p in self.plans]

    def validate(
        self, df: pl.DataFrame, key: str | list[str], max_examples: int = 20
    ) -> ValidationReport:
        if isinstance(df, pl.LazyFrame):
            df = df.collect()
        keys = _keys(key)
        missing = sorted(set(keys).union(*(p.fields for p in self.plans)) - set(df.columns))
        if missing:
            raise ValueError(f"input has no column(s) {', '.join(missing)}")
        targets = [p.spec.target_field for p in self.plans]
        key_out = [f"key:{k}" if k in targets else k for k in keys]
        compiler = _Compiler(df.schema)
        ops = [compiler.ops(p) for p in self.plans]
        shortcuts = _distinct_shortcuts(df, self.plans, ops)
        result = _execute(df, self.plans, ops, keys, key_out, shortcuts)
        return self._report(df, result, ops, keys, key_out, max_examples)

    def _report(self, df, result, ops, keys, key_out, max_examples) -> ValidationReport:
        possible = [_possible_codes(field_ops) for field_ops in ops]
        sums = [
            (pl.col(f"__r{i}") == c).sum().alias(f"{i}:{c}")
            for i, field_codes in enumerate(possible)
            for c in field_codes
        ]
        counts = result.select(sums).row(0, named=True) if sums else {}
        violations: dict[str, dict[str, int]] = {}
        examples: list[Violation] = []
        for i, plan in enumerate(self.plans):
            target = plan.spec.target_field
            violations[target] = {}
            for c in possible[i]:
                n = counts[f"{i}:{c}"]
                if not n:
                    continue
                reason = tf.REASONS[c - 1]
                violations[target][reason] = n
                if max_examples > 0:
                    rows = result.select(pl.arg_where(pl.col(f"__r{i}") == c)).to_series()
                    examples += self._examples(
                        df, result, rows.head(max_examples), plan, reason, key_out
                    )
        output = result.drop([f"__r{i}" for i in range(len(self.plans))])
        return ValidationReport(len(df), violations, examples, output, key_out)

    @staticmethod
    def _examples(df, result, rows, plan, reason, key_out) -> list[Violation]:
        key_rows = result[rows].select(key_out).rows()
        source = plan.spec.source_field
        values = df[source][rows].to_list() if source else [None] * len(rows)
        return [
            Violation(
                k[0] if len(key_out) == 1 else k, plan.spec.target_field, tf.to_text(v), reason
            )
            for k, v in zip(key_rows, values, strict=True)
        ]


def compile_mapping(specs: list[MappingSpec]) -> CompiledMapping:
    """Check and compile a mapping; RuleError (labelled with the target) on a bad rule."""
    return CompiledMapping(plan_mapping(specs))


__all__ = [
    "CompiledMapping",
    "MappingSpec",
    "RuleError",
    "ValidationReport",
    "Violation",
    "compile_mapping",
]
