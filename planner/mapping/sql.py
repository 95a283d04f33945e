"""A mapping column's rule as SQL, per dialect (PostgreSQL, MySQL, SQLite), built with sqlglot.

Used to compare key ranges inside the databases (planner.runs.pushdown): each row's mapped
value must come out of SQL exactly as the engine (engine.py) computes it, as text, or the
column is not pushed down. So only rules whose SQL meaning is the engine's are compiled:
identity, trim, lower, upper, replace, concat, default, map, max_length, reject_if_empty,
on text and integer source columns, giving text or (identity only) integers. Anything else
returns the reason it is not compiled, and the run compares that column on fetched rows.

Where a database's function is narrower than the engine's (TRIM strips spaces only, LOWER
and UPPER fold ASCII only in SQLite and by locale elsewhere), the column also carries a
*guard*: rows on which SQL might not agree with the engine (non-ASCII text, tabs or line
breaks at the ends); a key range holding such a row is always fetched and compared by the
engine. Text equality is byte equality (MySQL's case- and pad-blind collations are bypassed
with BINARY), as the engine's is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from planner.mapping import transforms as tf
from planner.mapping.engine import FieldPlan
from planner.mapping.rules import FieldRef, Star

DIALECTS = ("postgres", "mysql", "sqlite")
PUSHED_STEPS = frozenset(
    {"identity", "trim", "lower", "upper", "replace", "concat", "default", "map"}
    | {"max_length", "reject_if_empty"}
)
# Whitespace the engine's trim removes that SQL's TRIM keeps (ASCII ones; the rest is
# caught by the non-ASCII guard).
_OTHER_ASCII_SPACE = ("\t", "\n", "\x0b", "\x0c", "\r")


@dataclass(frozen=True)
class SqlColumn:
    """A mapped column in SQL: its value as text, its violation checks, its guard."""

    value: exp.Expression  # the compared value as text; NULL where the engine gives null
    checks: tuple[tuple[str, exp.Expression], ...]  # (reason, condition), first one wins
    guard: exp.Expression | None  # rows SQL may get wrong: their range is fetched
    kind: str = "string"  # the compared value's kind (planner.runs.pushdown.kind)


# Column kinds compared as read (an identity rule) by their canonical text, and the target
# types the engine reaches from them without a possible violation (or with the one below).
_AS_READ = {
    "decimal": "decimal",
    "float": "string",
    "datetime": "datetime",
    "datetime_utc": "datetime",
    "date": "date",
    "boolean": "boolean",
}
_PG_MICROS = "YYYY-MM-DD HH24:MI:SS.US"
_MYSQL_MICROS = "%Y-%m-%d %H:%i:%s.%f"


def family(kind: str | None) -> str | None:
    """Kinds compared alike: a naive timestamp is read as UTC, as reconcile() reads it."""
    return "datetime" if kind == "datetime_utc" else kind


def canonical(expr: exp.Expression, kind: str | None, dialect: str) -> exp.Expression | str:
    """A column's value as the text both databases print alike for equal values.

    Equal text must mean equal by the exact comparison rules (planner.runs.reconcile), and
    different values must print differently where that matters: decimals without trailing
    zeros, timestamps in UTC to the microsecond, floats only where the database prints the
    shortest text that reads back exactly (PostgreSQL 12+). Returns why, when there is none.
    """
    if kind in ("string", "integer"):
        return as_text(expr, kind)
    text_type = exp.DataType.Type.TEXT
    if kind == "decimal" and dialect in ("postgres", "mysql"):
        t = exp.cast(expr, text_type)
        trimmed = exp.Trim(
            this=exp.Trim(this=t.copy(), expression=exp.Literal.string("0"), position="TRAILING"),
            expression=exp.Literal.string("."),
            position="TRAILING",
        )
        has_point = exp.Like(this=t.copy(), expression=exp.Literal.string("%.%"))
        return exp.Case(ifs=[exp.If(this=has_point, true=trimmed)], default=t)
    if kind == "float" and dialect == "postgres":
        return exp.cast(expr, text_type)
    if kind in ("datetime", "datetime_utc", "date") and dialect in ("postgres", "mysql"):
        if dialect == "postgres":
            if kind == "datetime_utc":
                expr = exp.AtTimeZone(this=expr, zone=exp.Literal.string("UTC"))
            fmt = "YYYY-MM-DD" if kind == "date" else _PG_MICROS
            return exp.Anonymous(this="TO_CHAR", expressions=[expr, exp.Literal.string(fmt)])
        # MySQL sessions run in UTC (planner.connectors.mysql), so TIMESTAMP prints UTC.
        fmt = "%Y-%m-%d" if kind == "date" else _MYSQL_MICROS
        return exp.Anonymous(this="DATE_FORMAT", expressions=[expr, exp.Literal.string(fmt)])
    if kind == "boolean" and dialect == "postgres":
        return exp.Case(
            ifs=[
                exp.If(this=expr.copy(), true=exp.Literal.string("true")),
                exp.If(this=exp.Not(this=expr.copy()), true=exp.Literal.string("false")),
            ]
        )
    return f"a {kind or 'untyped'} column has no exact SQL text in {dialect} here"


def _as_read(
    plan: FieldPlan, kind: str, dialect: str, whole_digits: int | None = None
) -> SqlColumn | str:
    """An identity rule on a column that is neither text nor integer: compared as read
    (``whole_digits``: the most digits before the point the column's type allows)."""
    wanted = _AS_READ.get(kind)
    if wanted is None or plan.target.kind != wanted:
        return f"a {kind} column into a {plan.target.kind} field is not pushed down"
    if plan.default is not None:
        return f"a default for a {kind} column is not pushed down"
    if plan.spec.max_length is not None and plan.target.kind == "string":
        return f"max_length on the text of a {kind} column is not pushed down"
    raw = column(plan.spec.source_field)
    value = canonical(raw, kind, dialect)
    if isinstance(value, str):
        return value
    checks: list[tuple[str, exp.Expression]] = []
    bounded = whole_digits is not None and 10**whole_digits <= tf.DECIMAL_LIMIT
    if kind == "decimal" and not bounded:
        # The engine holds decimals below 10^18 (transforms.DECIMAL_LIMIT). A numeric(12, 2)
        # column cannot reach it, and the check would cost every row of a scan.
        limit = exp.Literal.number(tf.DECIMAL_LIMIT)
        checks.append(("type_mismatch", exp.GTE(this=exp.Abs(this=raw.copy()), expression=limit)))
    if plan.rejects_null:
        checks.append(("null_not_allowed", exp.Is(this=raw.copy(), expression=exp.null())))
    return SqlColumn(value, tuple((r, _is_true(c)) for r, c in checks), None, kind)


def column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def text(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def as_text(expr: exp.Expression, kind: str) -> exp.Expression:
    """A text or integer column's canonical text (integers as digits, as the engine)."""
    return expr if kind == "string" else exp.cast(expr, exp.DataType.Type.TEXT)


def equal(a: exp.Expression, b: exp.Expression, dialect: str) -> exp.Expression:
    """Byte equality of two texts, whatever the column's collation."""
    if dialect == "mysql":
        return exp.EQ(this=_binary(a), expression=_binary(b))
    if dialect == "sqlite":
        return exp.EQ(this=a, expression=exp.Collate(this=b, expression=exp.var("BINARY")))
    return exp.EQ(this=a, expression=b)


def _binary(e: exp.Expression) -> exp.Expression:
    return exp.cast(e, exp.DataType.Type.VARBINARY)


def octets(e: exp.Expression, dialect: str) -> exp.Expression:
    if dialect == "postgres":
        return exp.Anonymous(this="OCTET_LENGTH", expressions=[e])
    if dialect == "mysql":
        return exp.Anonymous(this="LENGTH", expressions=[e])
    return exp.Length(this=exp.cast(e, exp.DataType.Type.VARBINARY))


def non_ascii(e: exp.Expression, dialect: str) -> exp.Expression:
    return exp.NEQ(this=exp.Length(this=e), expression=octets(e, dialect))


def _ends_with_other_space(e: exp.Expression) -> exp.Expression:
    first = exp.Substring(this=e, start=exp.Literal.number(1), length=exp.Literal.number(1))
    last = exp.Substring(this=e, start=exp.Length(this=e.copy()), length=exp.Literal.number(1))
    chars = [text(c) for c in _OTHER_ASCII_SPACE]
    return exp.or_(
        exp.In(this=first, expressions=[c.copy() for c in chars]),
        exp.In(this=last, expressions=chars),
    )


def _is_true(cond: exp.Expression) -> exp.Expression:
    """``cond`` with NULL read as false (a null value breaks no rule here)."""
    return exp.Coalesce(this=exp.paren(cond), expressions=[exp.false()])


def compile_column(
    plan: FieldPlan,
    source_kinds: Mapping[str, str | None],
    dialect: str,
    *,
    as_read: bool,
    whole_digits: Mapping[str, int] | None = None,
) -> SqlColumn | str:
    """The plan's value and checks in ``dialect``, or why it does not compile.

    ``source_kinds`` gives each source column's kind ("string", "integer", …). With
    ``as_read`` (an identity rule, planner.runs.stages.as_read) the compared value is the
    source value as read, the default where it is null; the checks still count.
    ``whole_digits``: for decimal columns whose type bounds them (numeric(p, s)), the most
    digits before the point (p - s); a check that such a column cannot fail is left out.
    """
    if dialect not in DIALECTS:
        return f"no SQL dialect for {dialect}"
    spec = plan.spec
    read_kind = source_kinds.get(spec.source_field) if as_read else None
    if read_kind is not None and read_kind not in ("string", "integer"):
        return _as_read(plan, read_kind, dialect, (whole_digits or {}).get(spec.source_field))
    for call in plan.pipeline.steps:
        if call.name not in PUSHED_STEPS:
            return f"the transform {call.name}() has no exact SQL form"
    for name in sorted(plan.fields):
        if source_kinds.get(name) not in ("string", "integer"):
            return f"the source field '{name}' is {source_kinds.get(name) or 'of unknown type'}"
    if plan.target.kind not in ("string", "integer"):
        return f"a {plan.target.kind} result has no exact SQL text form here"
    if plan.target.kind == "integer":
        source_kind = source_kinds.get(spec.source_field)
        if not (as_read and source_kind == "integer"):
            return "an integer result is pushed down only as an identity of an integer column"
    value: exp.Expression = exp.null()
    if spec.source_field:
        kind = source_kinds[spec.source_field]
        value = as_text(column(spec.source_field), kind)  # type: ignore[arg-type]
    checks: list[tuple[str, exp.Expression]] = []
    guards: list[exp.Expression] = []
    for call, step in zip(plan.pipeline.steps, plan.steps, strict=True):
        given = "string" if call.name == "concat" else step.given.kind
        if call.name != "identity" and (given, step.result.kind) != ("string", "string"):
            return f"{call.name}() works on {step.given.kind} here, which is not pushed down"
        compiled = _step(call, value, dialect, checks, guards, source_kinds)
        if isinstance(compiled, str):
            return compiled
        value = compiled
    if plan.target.kind == "string" and spec.max_length is not None:
        checks.append(
            (
                "too_long",
                exp.GT(
                    this=exp.Length(this=value.copy()),
                    expression=exp.Literal.number(spec.max_length),
                ),
            )
        )
    if plan.default is not None:
        value = exp.Coalesce(this=value, expressions=[text(tf.literal_text(plan.default))])
    if plan.rejects_null:
        checks.append(("null_not_allowed", exp.Is(this=value.copy(), expression=exp.null())))
    if as_read:
        raw = as_text(column(spec.source_field), kind)  # type: ignore[arg-type]
        shown: exp.Expression = raw
        if plan.default is not None:
            shown = exp.Coalesce(this=raw, expressions=[text(tf.literal_text(plan.default))])
    elif checks:
        # A violating row's value is null, as in the engine.
        broken = exp.or_(*[_is_true(c) for _, c in checks])
        shown = exp.Case(ifs=[exp.If(this=broken, true=exp.null())], default=value)
    else:
        shown = value
    guard = exp.or_(*[_is_true(g) for g in guards]) if guards else None
    kind = read_kind if as_read else plan.target.kind
    return SqlColumn(shown, tuple((r, _is_true(c)) for r, c in checks), guard, kind or "string")


def _step(  # noqa: PLR0911 - one branch per transform
    call,
    value: exp.Expression,
    dialect: str,
    checks: list,
    guards: list,
    source_kinds: Mapping[str, str | None],
) -> exp.Expression | str:
    name, args = call.name, call.args
    if name == "identity":
        return value
    if name in ("trim", "lower", "upper"):
        guards.append(non_ascii(value.copy(), dialect))
        if name == "trim":
            guards.append(_ends_with_other_space(exp.Trim(this=value.copy())))
            return exp.Trim(this=value)
        return exp.Lower(this=value) if name == "lower" else exp.Upper(this=value)
    if name == "replace":
        old, new = (tf.literal_text(a) for a in args)
        # MySQL's REPLACE is byte-exact, like the engine's literal replace_all.
        return exp.Anonymous(this="REPLACE", expressions=[value, text(old), text(new)])
    if name == "concat":
        parts: list[exp.Expression] = []
        for a in args:
            if isinstance(a, FieldRef):
                parts.append(as_text(column(a.name), source_kinds[a.name]))  # type: ignore[arg-type]
            else:
                parts.append(text(tf.literal_text(a)))
        # The engine's concat takes only its arguments (the current value is not one).
        out: exp.Expression = parts[0]
        for p in parts[1:]:
            out = exp.DPipe(this=out, expression=p, safe=True)
        return out
    if name == "default":
        fill = text(tf.literal_text(args[0]))
        if args[0] != "":
            empty = exp.or_(
                exp.Is(this=value.copy(), expression=exp.null()),
                equal(value.copy(), text(""), dialect),
            )
            return exp.Case(ifs=[exp.If(this=empty, true=fill)], default=value)
        return exp.Coalesce(this=value, expressions=[fill])
    if name == "map":
        return _map(call, value, dialect, checks)
    if name == "max_length":
        checks.append(
            (
                "too_long",
                exp.GT(this=exp.Length(this=value.copy()), expression=exp.Literal.number(args[0])),
            )
        )
        return value
    if name == "reject_if_empty":
        empty = exp.or_(
            exp.Is(this=value.copy(), expression=exp.null()), equal(value.copy(), text(""), dialect)
        )
        checks.append(("rejected", empty))
        return value
    return f"the transform {name}() has no exact SQL form"


def _map(call, value: exp.Expression, dialect: str, checks: list) -> exp.Expression | str:
    keys: list[str] = []
    ifs = []
    fallback: object = FieldRef("reject")
    for k, v in call.kwargs:
        if isinstance(k, Star):
            fallback = v
            continue
        key = tf.literal_text(k)
        keys.append(key)
        out = exp.null() if v is None else text(tf.literal_text(v))
        ifs.append(exp.If(this=equal(value.copy(), text(key), dialect), true=out))
    if fallback == FieldRef("keep"):
        default: exp.Expression = value.copy()
    elif fallback == FieldRef("reject") or fallback is None:
        default = exp.null()
    else:
        default = exp.Case(
            ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.null()), true=exp.null())],
            default=text(tf.literal_text(fallback)),
        )
    if fallback == FieldRef("reject"):
        known = (
            exp.or_(*[equal(value.copy(), text(k), dialect) for k in keys]) if keys else exp.false()
        )
        unmapped = exp.and_(
            exp.Not(this=exp.Is(this=value.copy(), expression=exp.null())),
            exp.Not(this=exp.paren(_is_true(known))),
        )
        checks.append(("unmapped_value", unmapped))
    if not ifs:
        return default
    return exp.Case(ifs=ifs, default=default)


def render(e: exp.Expression, dialect: str) -> str:
    return e.sql(dialect=dialect)
