"""Compare key ranges inside the databases; fetch only the ranges that differ.

For every mapped column whose rule compiles to SQL (planner.mapping.sql) both sides compute,
per key range, the row count, the number of distinct keys, and an order-independent
checksum: the sums of two 32-bit slices of each row's MD5 over its key and mapped values,
each value as length-prefixed canonical text, so identical data gives identical sums in
PostgreSQL, MySQL and SQLite alike. The source side also counts each column's rule
violations. A range whose figures agree on both sides, with no duplicate key and no row the
SQL may read differently from the engine (the compiled rules' guards), is counted as equal
without reading a row; any other range is split at the source's key quantiles (ROW_NUMBER
in SQL) until it holds at most ``fetch_rows`` rows, and those ranges are read and compared
by the mapping engine and :func:`planner.runs.chunked.merge_compare` like any streamed run.

:func:`choose_columns` is the one place that decides, per column, whether it is pushed down
and why not. A range is only skipped when every compared column is pushed down: a column
compared on fetched rows needs every row read anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlglot import exp

from planner.mapping.engine import FieldPlan
from planner.mapping.sql import (
    SqlColumn,
    as_text,
    canonical,
    column,
    compile_column,
    family,
    render,
)
from planner.runs.stages import Side, is_identity

FANOUT = 16  # sub-ranges a differing range is split into
# When more than this share of the first DENSE_AFTER sub-ranges at a depth differ, the rest
# at that depth are read without a checksum (differences everywhere: reladiff's worst case).
DENSE_AFTER = 4
DENSE_SHARE = 0.75
NULL_KEYS = "null keys"  # the pseudo-range of rows with a null key part, always fetched

type Bound = tuple[Any, ...] | None
type Runner = Callable[[Callable[[str], str]], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class KeySpan:
    """A run's share of the keys (planner.runs.partitions): ``lo`` included, ``hi`` excluded,
    None for open; ``null_keys`` when the rows with a null key part are read here too."""

    lo: Bound = None
    hi: Bound = None
    null_keys: bool = True


def kind(dtype: pl.DataType) -> str | None:
    """A column's kind as planner.mapping.sql.canonical prints it (None: all null so far)."""
    if dtype == pl.String:
        return "string"
    if dtype.is_integer():
        return "integer"
    if isinstance(dtype, pl.Decimal):
        return "decimal"
    if dtype.is_float():
        return "float"
    if isinstance(dtype, pl.Datetime):
        return "datetime_utc" if dtype.time_zone else "datetime"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Boolean:
        return "boolean"
    return None if dtype == pl.Null else str(dtype)


def kinds(side: Side) -> dict[str, str | None]:
    assert side.head is not None
    return {name: kind(dtype) for name, dtype in side.head.schema.items()}


def whole_digits(side: Side) -> dict[str, int]:
    """The most digits before the point of each decimal column whose type bounds it (a SQL
    system's numeric(p, s) arrives as Decimal(p, s)): p - s."""
    assert side.head is not None
    return {
        name: dtype.precision - dtype.scale
        for name, dtype in side.head.schema.items()
        if isinstance(dtype, pl.Decimal) and dtype.precision is not None
    }


@dataclass
class Choice:
    """Per mapped column: its SQL (pushed down) or why it is compared on fetched rows."""

    pushed: dict[str, SqlColumn] = field(default_factory=dict)
    not_pushed: dict[str, str] = field(default_factory=dict)
    blocker: str = ""  # why no range can be skipped at all

    def figures(self) -> dict[str, Any]:
        return {"pushed_down": sorted(self.pushed), "not_pushed_down": self.not_pushed}


def choose_columns(
    source: Side,
    target: Side,
    plans: list[FieldPlan],
    compared: list[str],
    tolerances: dict[str, Any],
    order: list[str],
) -> Choice:
    """Which columns are compared inside the databases, and why the others are not."""
    choice = Choice()
    s_dialect = getattr(source.connector, "dialect", None)
    t_dialect = getattr(target.connector, "dialect", None)
    if not (s_dialect and t_dialect):
        choice.blocker = "a side is not a SQL system"
    s_kinds, t_kinds = kinds(source), kinds(target)
    for s_key, t_key in zip(order, target.key, strict=True):
        a, b = s_kinds.get(s_key), t_kinds.get(t_key)
        if a != b or a not in ("string", "integer"):
            choice.blocker = choice.blocker or (
                f"the key field '{t_key}' is {a} in the source and {b} in the target:"
                " key ranges need text or integer keys of one kind"
            )
    digits = whole_digits(source)
    for plan in plans:
        name = plan.spec.target_field
        if name in tolerances and name in compared:
            choice.not_pushed[name] = "it has a tolerance, applied to fetched rows"
            continue
        sql = compile_column(
            plan, s_kinds, s_dialect or "", as_read=is_identity(plan), whole_digits=digits
        )
        if isinstance(sql, str):
            choice.not_pushed[name] = sql
            continue
        if name in compared:
            t_kind = t_kinds.get(name)
            if family(t_kind) != family(sql.kind):
                choice.not_pushed[name] = (
                    f"the target column is {t_kind or 'of unknown type'},"
                    f" the mapping gives {sql.kind}"
                )
                continue
            text = canonical(column(name), t_kind, t_dialect or "")
            if isinstance(text, str):
                choice.not_pushed[name] = f"in the target, {text}"
                continue
        choice.pushed[name] = sql
    if choice.not_pushed and not choice.blocker:
        choice.blocker = "some columns are compared on fetched rows, so every row is read"
    return choice


# ---------------------------------------------------------------- SQL per side


def order_expr(name: str, key_kind: str, dialect: str) -> str:
    """A key column as the streamed read orders it: text by its bytes."""
    col = render(column(name), dialect)
    if key_kind != "string":
        return col
    if dialect == "postgres":
        return f'{col} COLLATE "C"'
    if dialect == "mysql":
        return f"CAST({col} AS BINARY)"
    return f"{col} COLLATE BINARY"


def literal(value: Any, key_kind: str, dialect: str) -> str:
    if key_kind == "integer":
        return str(int(value))
    lit = render(exp.Literal.string(str(value)), dialect)
    return f"CAST({lit} AS BINARY)" if dialect == "mysql" else lit


def _encode(value: exp.Expression) -> exp.Expression:
    """Length-prefixed text, '~' for null: no two different rows print alike."""
    length = exp.cast(exp.Length(this=value.copy()), exp.DataType.Type.TEXT)
    joined = exp.DPipe(
        this=exp.DPipe(this=length, expression=exp.Literal.string(":"), safe=True),
        expression=value,
        safe=True,
    )
    return exp.Coalesce(this=joined, expressions=[exp.Literal.string("~")])


def _hash_parts(dialect: str, row_text: str) -> tuple[str, list[str]]:
    """(inner column computing the row digest, the two 32-bit slices of it)."""
    if dialect == "sqlite":
        return row_text, [f"aethon_hash32(__m, {i})" for i in (0, 1)]
    inner = f"MD5({row_text})"
    if dialect == "postgres":
        parts = [f"CAST(CAST('x' || SUBSTR(__m, {s}, 8) AS BIT(32)) AS BIGINT)" for s in (1, 9)]
    else:
        parts = [f"CAST(CONV(SUBSTR(__m, {s}, 8), 16, 10) AS UNSIGNED)" for s in (1, 9)]
    return inner, parts


@dataclass
class RangeSide:
    """What one side computes per key range."""

    run: Runner
    dialect: str
    key: list[str]
    key_kinds: list[str]
    values: list[exp.Expression]  # compared values as text, in one field order
    checks: list[tuple[str, str, list[exp.Expression], int]] = field(default_factory=list)
    guards: list[exp.Expression] = field(default_factory=list)

    def order(self) -> list[str]:
        return [
            order_expr(k, kk, self.dialect) for k, kk in zip(self.key, self.key_kinds, strict=True)
        ]

    def where(self, lo: Bound, hi: Bound) -> str:
        cols = self.order()
        parts = [f"{render(column(k), self.dialect)} IS NOT NULL" for k in self.key]
        if lo is not None:
            parts.append(self._lex(cols, lo, ">="))
        if hi is not None:
            parts.append(self._lex(cols, hi, "<"))
        return " AND ".join(parts)

    def null_keys(self) -> str:
        return " OR ".join(f"{render(column(k), self.dialect)} IS NULL" for k in self.key)

    def span_where(self, span: KeySpan) -> str:
        """The rows of a span: its key range, and the null-key rows if it holds them."""
        where = f"({self.where(span.lo, span.hi)})"
        return f"({where} OR {self.null_keys()})" if span.null_keys else where

    def _lex(self, cols: list[str], bound: tuple[Any, ...], last: str) -> str:
        """Lexicographic ``cols >= bound`` or ``cols < bound`` over a compound key."""
        strict = ">" if last == ">=" else "<"
        lits = [literal(v, kk, self.dialect) for v, kk in zip(bound, self.key_kinds, strict=True)]
        expr = f"{cols[-1]} {last} {lits[-1]}"
        for c, v in zip(reversed(cols[:-1]), reversed(lits[:-1]), strict=True):
            expr = f"({c} {strict} {v} OR ({c} = {v} AND {expr}))"
        return f"({expr})"

    def checksum_sql(self, dataset: str, where: str) -> str:
        d = self.dialect
        keys = [as_text(column(k), kk) for k, kk in zip(self.key, self.key_kinds, strict=True)]
        row: exp.Expression = exp.Literal.string("")
        for v in [*keys, *self.values]:
            row = exp.DPipe(this=row, expression=_encode(v), safe=True)
        digest, parts = _hash_parts(d, render(row, d))
        guard = "0"
        if self.guards:
            guard = f"CASE WHEN {render(exp.or_(*self.guards), d)} THEN 1 ELSE 0 END"
        counts = []
        for _field, _reason, conds, index in self.checks:
            # The first violated check of a field wins, as in the engine.
            ifs = [
                exp.If(this=c.copy(), true=exp.Literal.number(int(i == index)))
                for i, c in enumerate(conds)
            ]
            counts.append(render(exp.Case(ifs=ifs, default=exp.Literal.number(0)), d))
        order = self.order()
        inner = ", ".join(
            [f"{o} AS __k{i}" for i, o in enumerate(order)]
            + [f"{digest} AS __m", f"{guard} AS __g"]
            + [f"{c} AS __v{i}" for i, c in enumerate(counts)]
        )
        group = ", ".join(f"__k{i}" for i in range(len(order)))
        mid = ", ".join(
            ["COUNT(*) AS __n", f"SUM({parts[0]}) AS __s0", f"SUM({parts[1]}) AS __s1"]
            + ["SUM(__g) AS __g"]
            + [f"SUM(__v{i}) AS __v{i}" for i in range(len(counts))]
        )
        outer = ", ".join(
            ["COUNT(*)", "SUM(__n)", "SUM(__s0)", "SUM(__s1)", "SUM(__g)"]
            + [f"SUM(__v{i})" for i in range(len(counts))]
        )
        return (
            f"SELECT {outer} FROM (SELECT {mid} FROM (SELECT {inner} FROM {dataset}"  # noqa: S608
            f" WHERE {where}) __r GROUP BY {group}) __x"
        )

    def checksum(self, lo: Bound, hi: Bound) -> RangeFigures:
        where = self.where(lo, hi)
        (row,) = self.run(lambda dataset: self.checksum_sql(dataset, where))
        keys, rows, s0, s1, guarded, *violations = row
        return RangeFigures(
            rows=int(rows or 0),
            keys=int(keys or 0),
            sums=(str(int(s0 or 0)), str(int(s1 or 0))),
            guarded=int(guarded or 0),
            violations=[int(v or 0) for v in violations],
        )

    def count(self, lo: Bound = None, hi: Bound = None) -> int:
        """Rows with a whole key (an index-only count where the key is indexed)."""
        where = self.where(lo, hi)
        (row,) = self.run(lambda dataset: f"SELECT COUNT(*) FROM {dataset} WHERE {where}")  # noqa: S608
        return int(row[0] or 0)

    def boundaries(self, lo: Bound, hi: Bound, step: int) -> list[tuple[Any, ...]]:
        """Every ``step``-th key of the range (the first excluded), in key order."""
        where = self.where(lo, hi)
        raw = [render(column(k), self.dialect) for k in self.key]
        picked = ", ".join(f"__b{i}" for i in range(len(raw)))

        def build(dataset: str) -> str:
            cols = ", ".join(f"{r} AS __b{i}" for i, r in enumerate(raw))
            return (
                f"SELECT {picked} FROM (SELECT {cols}, ROW_NUMBER() OVER"  # noqa: S608
                f" (ORDER BY {', '.join(self.order())}) AS __rn FROM {dataset} WHERE {where}) __q"
                f" WHERE __rn > 1 AND (__rn - 1) % {int(step)} = 0 ORDER BY __rn"
            )

        found = [tuple(r) for r in self.run(build)]
        # Duplicate keys can repeat a boundary; a range must not be empty by construction.
        return list(dict.fromkeys(found))


@dataclass
class RangeFigures:
    rows: int
    keys: int
    sums: tuple[str, str]
    guarded: int
    violations: list[int]

    def agrees(self, other: RangeFigures) -> bool:
        return (
            self.rows == other.rows
            and self.sums == other.sums
            and self.keys == self.rows
            and other.keys == other.rows
            and self.guarded == 0
            and other.guarded == 0
        )


@dataclass
class Walk:
    """The outcome of comparing ranges in the databases."""

    fetch: list[str] = field(default_factory=list)  # source-side WHERE per fetched range
    fetch_target: list[str] = field(default_factory=list)
    ranges_checked: int = 0
    ranges_equal: int = 0
    ranges_dense: int = 0  # read without a checksum: their neighbours nearly all differed
    rows_skipped: int = 0  # per side: the equal ranges' rows, counted not read
    violations: dict[str, dict[str, int]] = field(default_factory=dict)

    def figures(self, fetch_rows: int) -> dict[str, Any]:
        return {
            "fetch_rows": fetch_rows,
            "ranges_checked": self.ranges_checked,
            "ranges_equal": self.ranges_equal,
            "ranges_read_unchecked": self.ranges_dense,
            "rows_skipped": self.rows_skipped,
            "ranges_fetched": len(self.fetch),
        }


def source_side(
    run: Runner,
    dialect: str,
    source: Side,
    order: list[str],
    choice: Choice,
    plans: list[FieldPlan],
    compared: list[str],
) -> RangeSide:
    key_kinds = [kinds(source)[k] for k in order]
    side = RangeSide(run, dialect, order, key_kinds, [choice.pushed[f].value for f in compared])  # type: ignore[arg-type]
    for plan in plans:
        sql = choice.pushed[plan.spec.target_field]
        conds = [c for _, c in sql.checks]
        for i, (reason, _c) in enumerate(sql.checks):
            side.checks.append((plan.spec.target_field, reason, conds, i))
        if sql.guard is not None:
            side.guards.append(sql.guard)
    return side


def target_side(run: Runner, dialect: str, target: Side, compared: list[str]) -> RangeSide:
    t_kinds = kinds(target)
    values = [canonical(column(f), t_kinds[f], dialect) for f in compared]
    assert not any(isinstance(v, str) for v in values)  # choose_columns checked each
    return RangeSide(run, dialect, list(target.key), [t_kinds[k] for k in target.key], values)  # type: ignore[misc]


def walk_ranges(
    source: RangeSide,
    target: RangeSide,
    fetch_rows: int,
    on_rows: Callable[[int], None] | None = None,
    span: KeySpan | None = None,
) -> Walk:
    """Checksum key ranges on both sides, bisecting the ones that differ (within ``span``)."""
    span = span or KeySpan()
    out = Walk()
    pending: list[tuple[Bound, Bound]] = []  # adjacent ranges to fetch, merged into one read
    with ThreadPoolExecutor(max_workers=2) as pool:

        def both(lo: Bound, hi: Bound) -> tuple[RangeFigures, RangeFigures]:
            a = pool.submit(source.checksum, lo, hi)
            b = pool.submit(target.checksum, lo, hi)
            return a.result(), b.result()

        def flush() -> None:
            if pending:
                lo, hi = pending[0][0], pending[-1][1]
                out.fetch.append(source.where(lo, hi))
                out.fetch_target.append(target.where(lo, hi))
                pending.clear()

        checked: dict[int, list[int]] = {}  # depth -> [ranges checked, ranges differing]

        def dense(depth: int) -> bool:
            """Most ranges at this depth differ: checksumming the rest would only add a scan."""
            n, differing = checked.get(depth, [0, 0])
            return n >= DENSE_AFTER and differing > n * DENSE_SHARE

        def visit(lo: Bound, hi: Bound, depth: int = 0) -> None:
            s, t = both(lo, hi)
            out.ranges_checked += 1
            tally = checked.setdefault(depth, [0, 0])
            tally[0] += 1
            if s.rows == 0 and t.rows == 0:
                return
            if not s.agrees(t):
                tally[1] += 1
            if s.agrees(t):
                flush()
                out.ranges_equal += 1
                out.rows_skipped += s.rows
                for (name, reason, _c, _i), n in zip(source.checks, s.violations, strict=True):
                    if n:
                        mine = out.violations.setdefault(name, {})
                        mine[reason] = mine.get(reason, 0) + n
                if on_rows is not None:
                    on_rows(s.rows + t.rows)
                return
            bigger = source if s.rows >= t.rows else target
            rows = max(s.rows, t.rows)
            cuts = []
            if rows > fetch_rows and not dense(depth):
                cuts = bigger.boundaries(lo, hi, max(1, -(-rows // FANOUT)))
                cuts = [c for c in cuts if c != lo]
            if not cuts:
                pending.append((lo, hi))
                return
            edges: list[Bound] = [lo, *cuts, hi]
            for a, b in zip(edges, edges[1:], strict=False):
                if dense(depth + 1):
                    pending.append((a, b))
                    out.ranges_dense += 1
                else:
                    visit(a, b, depth + 1)

        # The whole table is not checksummed first: that is a full scan that differences
        # anywhere make useless. Its first level of ranges is, after one cheap count.
        rows = source.count(span.lo, span.hi)
        cuts = (
            source.boundaries(span.lo, span.hi, max(1, -(-rows // FANOUT)))
            if rows > fetch_rows
            else []
        )
        cuts = [c for c in cuts if c != span.lo]
        edges: list[Bound] = [span.lo, *cuts, span.hi]
        for a, b in zip(edges, edges[1:], strict=False):
            if dense(1):
                pending.append((a, b))
                out.ranges_dense += 1
            else:
                visit(a, b, 1)
        flush()
    if span.null_keys:
        out.fetch.append(source.null_keys())
        out.fetch_target.append(target.null_keys())
    return out


def ranged(
    read: Callable[[str], Iterator[pl.DataFrame]], wheres: list[str]
) -> Iterator[pl.DataFrame]:
    """The chunks of each fetched range in turn: ranges ascend, so the stream stays sorted."""
    for where in wheres:
        chunks = read(where)
        try:
            yield from chunks
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


def sample_where(side: Side, key: list[str], percent: int) -> str:
    """Rows whose key hashes into the first ``percent`` of 100 buckets.

    The hash is the checksums' (MD5 of the key's canonical text), so both sides, in any of
    the three databases, keep exactly the same keys: a sample never invents a missing key.
    """
    dialect = getattr(side.connector, "dialect", "")
    side_kinds = kinds(side)
    row: exp.Expression = exp.Literal.string("")
    for k in key:
        text = canonical(column(k), side_kinds.get(k), dialect)
        if isinstance(text, str):
            raise ValueError(f"the key field '{k}': {text}")
        row = exp.DPipe(this=row, expression=_encode(text), safe=True)
    digest, parts = _hash_parts(dialect, render(row, dialect))
    bucket = parts[0].replace("__m", digest)
    return f"({bucket}) % 100 < {int(percent)}"
