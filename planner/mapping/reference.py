"""Row-by-row implementation of the mapping semantics, in plain Python.

It is the oracle the vectorised engine is tested against and the baseline the
benchmark compares with, so it favours obviousness over speed. It shares only the
static compile (parsing, checking, types) and the value definitions in transforms.py
with the engine; every transform is re-implemented here.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

import polars as pl

from planner.mapping import transforms as tf
from planner.mapping.engine import (
    FieldPlan,
    MappingSpec,
    ValidationReport,
    Violation,
    dtype_of,
    plan_mapping,
)
from planner.mapping.rules import Call, FieldRef, Star, StepType
from planner.mapping.transforms import FAIL, ValueType

_EPOCH = datetime(1970, 1, 1)


class _Violation(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _check(value: object, reason: str) -> object:
    if value is FAIL:
        raise _Violation(reason)
    return value


def _convert(value: object, src: ValueType, dst: ValueType) -> object:
    return _check(tf.convert(value, src, dst), "type_mismatch")


def _parse(value: str | None, reason: str, parse) -> object:
    if value is None or tf.is_blank(value):
        return None
    return _check(parse(value), reason)


def _map(call: Call, result: ValueType, value: str | None) -> object:
    table, fallback = {}, FieldRef("reject")
    for key, v in call.kwargs:
        if isinstance(key, Star):
            fallback = v
        else:
            table[tf.literal_text(key)] = None if v is None else tf.literal_as(v, result)
    if value is None:
        return None
    if value in table:
        return table[value]
    if fallback == FieldRef("keep"):
        return value
    if fallback == FieldRef("reject"):
        raise _Violation("unmapped_value")
    return None if fallback is None else tf.literal_as(fallback, result)


def _currency(rate_arg: object, result: ValueType, value: Decimal | None, record: dict) -> object:
    if value is None:  # no amount: nothing to convert, whatever the rate
        return None
    if isinstance(rate_arg, FieldRef):
        text = tf.to_text(record.get(rate_arg.name))
        if text is None or tf.is_blank(text):
            return None
        rate = _check(tf.parse_decimal(text, tf.RATE_SCALE), "type_mismatch")
        if abs(rate) >= tf.RATE_LIMIT:  # type: ignore[arg-type]
            raise _Violation("type_mismatch")
    else:
        rate = Decimal(rate_arg)  # type: ignore[arg-type]
    # Exact product, rounded half to even to the rate's 9 places, then to the result's.
    exact = tf.DECIMAL_CONTEXT.multiply(value, rate)
    product = exact.quantize(Decimal("1e-9"), context=tf.DECIMAL_CONTEXT)
    return _check(tf.quantize(product, result.scale), "type_mismatch")


def _epoch(value: date | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    delta = value - _EPOCH
    return delta.days * 86400 + delta.seconds


def _apply(call: Call, step: StepType, value: object, record: dict) -> object:  # noqa: C901, PLR0911, PLR0912
    name, args = call.name, call.args
    given, result = step.given, step.result
    if name == "concat":
        parts = [
            tf.to_text(record.get(a.name)) if isinstance(a, FieldRef) else tf.literal_text(a)
            for a in args
        ]
        return None if None in parts else "".join(parts)  # type: ignore[arg-type]
    if name == "default":
        missing = value is None or (given.kind == "string" and value == "")
        return tf.literal_as(args[0], given) if missing else value
    if name == "reject_if_empty":
        if value is None or (given.kind == "string" and value == ""):
            raise _Violation("rejected")
        return value
    if name == "map":
        return _map(call, result, value)  # type: ignore[arg-type]
    if name == "currency":
        return _currency(args[2], result, value, record)  # type: ignore[arg-type]
    if value is None:
        return None
    s: str = value  # type: ignore[assignment]
    if name == "identity":
        return value
    if name == "trim":
        return s.strip(tf.TRIM_CHARS)
    if name == "lower":
        return s.lower()
    if name == "upper":
        return s.upper()
    if name == "replace":
        return s.replace(args[0], args[1])
    if name == "substr":
        start = args[0]
        return s[start : start + args[1]] if len(args) > 1 else s[start:]
    if name == "split":
        parts = s.split(args[0])
        return parts[args[1]] if -len(parts) <= args[1] < len(parts) else None
    if name == "number":
        return _parse(s, "type_mismatch", lambda t: tf.parse_decimal(t, result.scale))
    if name in ("integer", "boolean"):
        return _parse(s, "type_mismatch", lambda t: tf.parse_text(t, result))
    if name in ("date", "datetime"):
        if not args:
            return _parse(s, "bad_date", lambda t: tf.parse_iso(t, name))
        fmt = tf.compile_date_format(args[0])
        return _parse(s, "bad_date", lambda t: tf.parse_date(t, fmt, name))
    if name == "epoch":
        return _epoch(value)  # type: ignore[arg-type]
    if name == "format_date":
        return tf.format_date_value(value, args[0])  # type: ignore[arg-type]
    if name == "max_length":
        if len(s) > args[0]:
            raise _Violation("too_long")
        return s
    if name == "regex":
        if re.search(args[0], s) is None:
            raise _Violation("regex_mismatch")
        return s
    raise AssertionError(f"no reference implementation for {name}")


def run_field(plan: FieldPlan, record: dict) -> tuple[object, str | None]:
    """(target value, None) or (None, reason) for one record."""
    spec = plan.spec
    value = tf.to_text(record.get(spec.source_field)) if spec.source_field else None
    current = ValueType("string")
    try:
        for call, step in zip(plan.pipeline.steps, plan.steps, strict=True):
            if call.name != "concat":
                value = _convert(value, current, step.given)
            value = _apply(call, step, value, record)
            current = step.result
        value = _convert(value, current, plan.target)
        limit = spec.max_length if plan.target.kind == "string" else None
        if limit is not None and value is not None and len(value) > limit:  # type: ignore[arg-type]
            raise _Violation("too_long")
        if value is None and plan.default is not None:
            value = plan.default
        if value is None and plan.rejects_null:
            raise _Violation("null_not_allowed")
    except _Violation as v:
        return None, v.reason
    return value, None


def validate_records(
    specs: list[MappingSpec], records: list[dict], key: str | list[str], max_examples: int = 20
) -> ValidationReport:
    plans = plan_mapping(specs)
    keys = [key] if isinstance(key, str) else list(key)
    targets = [p.spec.target_field for p in plans]
    key_out = [f"key:{k}" if k in targets else k for k in keys]
    columns: list[list[object]] = [[] for _ in plans]
    counts: list[dict[str, int]] = [{} for _ in plans]
    found: dict[tuple[int, str], list[Violation]] = {}
    for record in records:
        for i, plan in enumerate(plans):
            value, reason = run_field(plan, record)
            columns[i].append(value)
            if reason is None:
                continue
            counts[i][reason] = counts[i].get(reason, 0) + 1
            bucket = found.setdefault((i, reason), [])
            if len(bucket) < max_examples:
                k = record[keys[0]] if len(keys) == 1 else tuple(record[k] for k in keys)
                source = record.get(plan.spec.source_field) if plan.spec.source_field else None
                bucket.append(Violation(k, targets[i], tf.to_text(source), reason))
    order = tf.REASON_CODE.__getitem__
    violations = {
        t: dict(sorted(c.items(), key=lambda kv: order(kv[0])))
        for t, c in zip(targets, counts, strict=True)
    }
    examples = [
        v
        for (i, reason) in sorted(found, key=lambda ir: (ir[0], order(ir[1])))
        for v in found[(i, reason)]
    ]
    data = {o: pl.Series(o, [r[k] for r in records]) for k, o in zip(keys, key_out, strict=True)}
    for plan, target, values in zip(plans, targets, columns, strict=True):
        data[target] = pl.Series(target, values, dtype=dtype_of(plan.target))
    return ValidationReport(len(records), violations, examples, pl.DataFrame(data), key_out)
