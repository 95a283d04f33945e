"""Reconcile a (transformed) source against a target by key, column-wise in polars.

Comparison rules (also in docs/connectors.md):

* Rows are matched by a hash join on the key columns. Rows whose key has a null part
  are not compared (counted as ``null_keys_*``); if a key occurs more than once, the
  first row is compared and the surplus rows are counted as ``duplicate_rows_*``.
* Values are compared exactly; nothing is rounded. Null equals null; NaN equals NaN.
  Same dtype: natively. Integers and decimals of any scale: as exact numbers (0.10 = 0.1).
  A float against another number: at the float's precision (the other side becomes the
  nearest float). Datetimes: to the microsecond, time-zone-aware ones converted to UTC
  first (and then compared with naive ones as if those were UTC). Text against a number or
  a datetime (a CSV, SQLite): read as the mapping language reads it (every decimal place;
  a fraction of a second and an offset, to UTC) and compared as above; text that does not
  read so is compared as text. Anything else: as
  *normalized text* (below). Text is compared exactly, never trimmed or case-folded.
* Normalized text: integers as digits; floats that are whole (and below 2**53) as
  integers, others in shortest round-trip form; decimals without trailing zeros (and
  so is text like ``3.00`` when the other side is numeric);
  booleans ``true``/``false``; dates ``YYYY-MM-DD``; datetimes ``YYYY-MM-DD HH:MM:SS``
  plus fractional seconds if any, in UTC; strings unchanged.
* A field may carry a tolerance (planner.mapping.tolerance): values that differ exactly are
  then asked whether they agree within it, so a tolerance never invents a difference.
* Mismatch lists show each side's value as stored (``0.1234567000``, ``1e-7``, a
  timestamp with its offset), not the normalized text.
* Key columns whose dtypes differ are joined as integers when both are integers, and on
  their normalized text otherwise. Key lists and the differences are sorted by key, numbers
  (also numbers held as text) numerically.

:func:`reconcile_postgres` computes the same report for two PostgreSQL tables while
pulling only (key, hash) pairs and the rows that differ.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from planner.connectors.postgres import cursor_frame
from planner.mapping.engine import parse_text
from planner.mapping.tolerance import Tolerance
from planner.mapping.transforms import FULL_SCALE, ValueType

STATUS_MISSING = "missing_in_target"
STATUS_EXTRA = "extra_in_target"
STATUS_MISMATCH = "mismatch"
_MAX_EXACT_FLOAT_INT = 2**53


# ---------------------------------------------------------------- normalization


def normalized_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """``expr`` as comparable text, following the rules in the module docstring."""
    if dtype == pl.Boolean:
        return expr.cast(pl.String)
    if dtype.is_integer() or dtype in (pl.String, pl.Null) or isinstance(dtype, pl.Categorical):
        return expr.cast(pl.String)
    if dtype.is_float():
        whole = expr.is_finite() & (expr.round(0) == expr) & (expr.abs() < _MAX_EXACT_FLOAT_INT)
        return (
            pl.when(whole)
            .then(expr.cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(expr.cast(pl.String))
        )
    if isinstance(dtype, pl.Decimal):
        return _trim_decimal_text(expr.cast(pl.String))
    if dtype == pl.Date:
        return expr.dt.to_string("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return expr.dt.to_string("%Y-%m-%d %H:%M:%S%.f")
    if dtype == pl.Time:
        return expr.dt.to_string("%H:%M:%S%.f")
    if dtype == pl.Binary:
        return expr.bin.encode("hex")
    if isinstance(dtype, pl.List | pl.Array | pl.Struct):
        # json_encode lives on structs: wrap, encode, then strip the wrapper '{"v":…}'.
        return pl.struct(expr.alias("v")).struct.json_encode().str.slice(5).str.slice(0, -1)
    return expr.cast(pl.String)


def _trim_decimal_text(expr: pl.Expr) -> pl.Expr:
    trimmed = expr.str.replace(r"^(-?\d+)\.(\d*?)0+$", "${1}.${2}")
    return trimmed.str.strip_suffix(".")


def display_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Text shown in mismatch lists: the value as stored, never rounded or re-formatted."""
    if isinstance(dtype, pl.Decimal) and dtype.scale == FULL_SCALE:
        # A number the mapping read from text, held at every place it could have: show
        # what it is (383.75), not the width it is held at.
        return _trim_decimal_text(expr.cast(pl.String))
    if isinstance(dtype, pl.Decimal) or dtype.is_float() or dtype == pl.String:
        return expr.cast(pl.String)
    if isinstance(dtype, pl.Datetime):
        offset = "%:z" if dtype.time_zone is not None else ""
        return expr.dt.to_string(f"%Y-%m-%d %H:%M:%S%.f{offset}")
    return normalized_text(expr, dtype)


def differs(a: pl.Expr, a_type: pl.DataType, b: pl.Expr, b_type: pl.DataType) -> pl.Expr:
    """True where the two values differ exactly (nulls compare equal to each other)."""
    if a_type == b_type:
        return a.ne_missing(b)
    if _is_number(a_type) and _is_number(b_type):
        if a_type.is_float() or b_type.is_float():
            # A float holds no more than its own precision: compare at it, not beyond.
            width = pl.Float32 if pl.Float32 in (a_type, b_type) else pl.Float64
            return a.cast(width).ne_missing(b.cast(width))
        return _exact_number_text(a, a_type).ne_missing(_exact_number_text(b, b_type))
    if isinstance(a_type, pl.Datetime) and isinstance(b_type, pl.Datetime):
        return _utc_microseconds(a, a_type).ne_missing(_utc_microseconds(b, b_type))
    if _is_text_and_stamp(a_type, b_type):
        return _stamp_text_differs(a, b, b_type)
    if _is_text_and_stamp(b_type, a_type):
        return _stamp_text_differs(b, a, a_type)
    if a_type == pl.String and _is_number(b_type):
        return _number_text_differs(a, b, b_type)
    if b_type == pl.String and _is_number(a_type):
        return _number_text_differs(b, a, a_type)
    a_text, b_text = normalized_text(a, a_type), normalized_text(b, b_type)
    # Numbers stored as text ("3.00") meet numbers (3): trim the text side the same way.
    if _is_number(a_type) and b_type == pl.String:
        b_text = _trim_decimal_text(b_text)
    elif _is_number(b_type) and a_type == pl.String:
        a_text = _trim_decimal_text(a_text)
    return a_text.ne_missing(b_text)


def _is_text_and_stamp(a_type: pl.DataType, b_type: pl.DataType) -> bool:
    return a_type == pl.String and isinstance(b_type, pl.Datetime)


def _stamp_text_differs(text: pl.Expr, stamp: pl.Expr, stamp_type: pl.Datetime) -> pl.Expr:
    """A timestamp stored as text (a CSV, SQLite) against a real one: the text is read as the
    mapping language reads it (fraction, offset to UTC) and compared to the microsecond;
    text that is no timestamp is compared as text, so it still differs."""
    parsed = parse_text(text, ValueType("datetime"))
    as_text = text.ne_missing(normalized_text(stamp, stamp_type))
    exact = parsed.ne_missing(_utc_microseconds(stamp, stamp_type))
    return pl.when(parsed.is_not_null()).then(exact).otherwise(as_text)


def _number_text_differs(text: pl.Expr, number: pl.Expr, number_type: pl.DataType) -> pl.Expr:
    """A number stored as text ("1e-7", "3.00") against a numeric column: read as the mapping
    language reads numbers, at every place, and compared exactly (at a float's precision
    against a float); text that is no number is compared as text."""
    parsed = parse_text(text, ValueType("decimal", FULL_SCALE))
    if number_type.is_float():
        exact = parsed.cast(pl.Float64).ne_missing(number.cast(pl.Float64))
    else:
        parsed_text = _exact_number_text(parsed, pl.Decimal(38, FULL_SCALE))
        exact = parsed_text.ne_missing(_exact_number_text(number, number_type))
    as_text = _trim_decimal_text(text).ne_missing(normalized_text(number, number_type))
    return pl.when(parsed.is_not_null()).then(exact).otherwise(as_text)


def _exact_number_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """An integer or decimal as canonical exact text: no trailing zeros, no negative zero."""
    text = _trim_decimal_text(expr.cast(pl.String)) if isinstance(dtype, pl.Decimal) else None
    text = expr.cast(pl.String) if text is None else text
    return text.str.replace(r"^-0$", "0")


def _utc_microseconds(expr: pl.Expr, dtype: pl.Datetime) -> pl.Expr:
    if dtype.time_zone is not None:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return expr.cast(pl.Datetime("us"))


def _is_number(dtype: pl.DataType) -> bool:
    return dtype.is_numeric()


def align_keys(
    source: pl.DataFrame, target: pl.DataFrame, key: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Key columns with different dtypes: integers are joined as Int64, others as text."""
    s_casts, t_casts = [], []
    for name in key:
        s_type, t_type = source.schema[name], target.schema[name]
        if s_type == t_type:
            continue
        if s_type.is_integer() and t_type.is_integer():
            s_casts.append(pl.col(name).cast(pl.Int64, strict=False))
            t_casts.append(pl.col(name).cast(pl.Int64, strict=False))
        else:
            s_casts.append(normalized_text(pl.col(name), s_type).alias(name))
            t_casts.append(normalized_text(pl.col(name), t_type).alias(name))
    if s_casts:
        source, target = source.with_columns(s_casts), target.with_columns(t_casts)
    return source, target


def sort_by_key(frame: pl.DataFrame, key: Sequence[str], *more: str) -> pl.DataFrame:
    """Rows in key order, numbers held as text sorted as numbers (2 before 10)."""
    by: list[pl.Expr] = []
    for name in [*key, *more]:
        if frame.schema[name] == pl.String:
            by.append(pl.col(name).cast(pl.Float64, strict=False))
        by.append(pl.col(name))
    if not by or frame.height == 0:
        return frame
    return frame.sort(by, nulls_last=True, maintain_order=True)


def _clean_keys(frame: pl.DataFrame, key: Sequence[str]) -> tuple[pl.DataFrame, int, int]:
    """Drop rows with a null key part and surplus duplicates; return both counts."""
    nulls = 0
    # A column's null count is known without a pass, and a distinct count is far cheaper
    # than an order-preserving unique(): most frames have neither, and are kept as they are.
    if any(frame.get_column(k).null_count() for k in key):
        has_null = pl.any_horizontal([pl.col(k).is_null() for k in key])
        before = frame.height
        frame = frame.filter(~has_null)
        nulls = before - frame.height
    distinct = (
        frame.get_column(key[0]).n_unique()
        if len(key) == 1
        else frame.select(pl.struct(list(key)).n_unique()).item()
    )
    if distinct == frame.height:
        return frame, nulls, 0
    unique = frame.unique(subset=list(key), keep="first", maintain_order=True)
    return unique, nulls, frame.height - unique.height


# ---------------------------------------------------------------- report


@dataclass
class ReconcileReport:
    key: list[str]
    fields: list[str]
    source_count: int
    target_count: int
    matched_count: int
    equal_count: int
    missing_in_target: pl.DataFrame
    extra_in_target: pl.DataFrame
    mismatch_counts: dict[str, int]
    examples: dict[str, list[dict[str, Any]]]
    null_keys_source: int = 0
    null_keys_target: int = 0
    duplicate_rows_source: int = 0
    duplicate_rows_target: int = 0
    compared_as_text: list[str] = field(default_factory=list)
    mismatches: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)
    tolerances: dict[str, str] = field(default_factory=dict)  # field -> stated tolerance
    within_tolerance: dict[str, int] = field(default_factory=dict)  # differ, yet agree

    @property
    def mismatched_count(self) -> int:
        """Matched rows with at least one differing field."""
        return self.matched_count - self.equal_count

    @property
    def ok(self) -> bool:
        return not (self.missing_in_target.height or self.extra_in_target.height) and (
            self.mismatched_count == 0
        )

    def mismatches_frame(self) -> pl.DataFrame:
        """One row per (key, field) that differs: key columns, field, source/target text."""
        return self.mismatches

    def mismatched_keys(self) -> pl.DataFrame:
        return self.mismatches.select(self.key).unique(maintain_order=True)

    def differences_frame(self) -> pl.DataFrame:
        """Everything for a CSV download: status, key columns, field, source/target values."""
        cols = ["status", *self.key, "field", "source_value", "target_value"]
        none = pl.lit(None, dtype=pl.String)

        def side(frame: pl.DataFrame, status: str) -> pl.DataFrame:
            return frame.select(
                pl.lit(status).alias("status"),
                *self.key,
                none.alias("field"),
                none.alias("source_value"),
                none.alias("target_value"),
            )

        parts = [
            side(self.missing_in_target, STATUS_MISSING),
            side(self.extra_in_target, STATUS_EXTRA),
            self.mismatches.select(pl.lit(STATUS_MISMATCH).alias("status"), pl.exclude("status")),
        ]
        frame = pl.concat([p.select(cols) for p in parts], how="vertical_relaxed")
        # Status first, then the key: numbers (also held as text) in numeric order.
        order = {STATUS_MISSING: 0, STATUS_EXTRA: 1, STATUS_MISMATCH: 2}
        frame = frame.with_columns(
            pl.col("status").replace_strict(order, return_dtype=pl.Int8).alias("__o")
        )
        return sort_by_key(frame, ["__o", *self.key], "field").drop("__o")

    def summary(self, max_keys: int = 20) -> dict[str, Any]:
        """JSON-serialisable digest (capped key lists) for storing with a validation run."""
        return {
            "key": self.key,
            "fields": self.fields,
            "source_count": self.source_count,
            "target_count": self.target_count,
            "matched_count": self.matched_count,
            "equal_count": self.equal_count,
            "mismatched_count": self.mismatched_count,
            "missing_in_target_count": self.missing_in_target.height,
            "extra_in_target_count": self.extra_in_target.height,
            "missing_in_target": _key_dicts(self.missing_in_target.head(max_keys)),
            "extra_in_target": _key_dicts(self.extra_in_target.head(max_keys)),
            "mismatch_counts": self.mismatch_counts,
            "examples": self.examples,
            "null_keys_source": self.null_keys_source,
            "null_keys_target": self.null_keys_target,
            "duplicate_rows_source": self.duplicate_rows_source,
            "duplicate_rows_target": self.duplicate_rows_target,
            "compared_as_text": self.compared_as_text,
            "tolerances": self.tolerances,
            "within_tolerance": self.within_tolerance,
            "ok": self.ok,
        }


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _key_dicts(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: _json_value(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]


# ---------------------------------------------------------------- in-memory


def _check(frame: pl.DataFrame, names: Sequence[str], side: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"{side} has no column(s): {', '.join(missing)}")


def reconcile(
    source: pl.DataFrame,
    target: pl.DataFrame,
    key: Sequence[str],
    fields: Sequence[str],
    max_examples: int = 20,
    tolerances: dict[str, Tolerance] | None = None,
) -> ReconcileReport:
    """Compare ``fields`` of ``source`` and ``target`` row by row, matched on ``key``.

    ``tolerances`` maps a field to the tolerance its mapping row states; values that differ
    exactly but agree within it count as equal (and are counted in ``within_tolerance``).
    """
    key = list(key)
    if not key:
        raise ValueError("At least one key column is required.")
    fields = [f for f in dict.fromkeys(fields) if f not in key]
    _check(source, key + fields, "source")
    _check(target, key + fields, "target")
    s, t = align_keys(source.select(key + fields), target.select(key + fields), key)
    s, s_nulls, s_dups = _clean_keys(s, key)
    t, t_nulls, t_dups = _clean_keys(t, key)

    s_names = {f: f"__s{i}" for i, f in enumerate(fields)}
    t_names = {f: f"__t{i}" for i, f in enumerate(fields)}
    s = s.rename(s_names).with_columns(pl.lit(True).alias("__in_s"))
    t = t.rename(t_names).with_columns(pl.lit(True).alias("__in_t"))
    joined = s.join(t, on=key, how="full", coalesce=True)
    in_s, in_t = pl.col("__in_s").is_not_null(), pl.col("__in_t").is_not_null()
    missing = sort_by_key(joined.filter(in_s & ~in_t).select(key), key)
    extra = sort_by_key(joined.filter(~in_s & in_t).select(key), key)

    flags = [f"__d{i}" for i in range(len(fields))]
    matched = joined.filter(in_s & in_t).with_columns(
        differs(pl.col(s_names[f]), source.schema[f], pl.col(t_names[f]), target.schema[f]).alias(d)
        for f, d in zip(fields, flags, strict=True)
    )
    tolerances = {f: t for f, t in (tolerances or {}).items() if f in fields and t is not None}
    matched, within = _apply_tolerances(matched, fields, flags, s_names, t_names, tolerances)
    counts = matched.select(pl.col(flags).sum()).row(0) if flags else ()
    mismatch_counts = {f: int(c) for f, c in zip(fields, counts, strict=True)}
    equal = matched.filter(~pl.any_horizontal(flags)).height if flags else matched.height

    parts = []
    for f, d in zip(fields, flags, strict=True):
        if mismatch_counts[f]:
            parts.append(
                matched.filter(pl.col(d)).select(
                    *key,
                    pl.lit(f).alias("field"),
                    display_text(pl.col(s_names[f]), source.schema[f]).alias("source_value"),
                    display_text(pl.col(t_names[f]), target.schema[f]).alias("target_value"),
                )
            )
    if parts:
        mismatches = sort_by_key(pl.concat(parts, how="vertical_relaxed"), key, "field")
    else:
        mismatches = (
            s.select(key)
            .clear()
            .with_columns(
                pl.lit(None, pl.String).alias(c) for c in ("field", "source_value", "target_value")
            )
        )

    return ReconcileReport(
        key=key,
        fields=fields,
        source_count=source.height,
        target_count=target.height,
        matched_count=matched.height,
        equal_count=equal,
        missing_in_target=missing,
        extra_in_target=extra,
        mismatch_counts=mismatch_counts,
        examples=_examples(mismatches, key, max_examples),
        null_keys_source=s_nulls,
        null_keys_target=t_nulls,
        duplicate_rows_source=s_dups,
        duplicate_rows_target=t_dups,
        compared_as_text=[
            n for n in fields if _compared_as_text(source.schema[n], target.schema[n])
        ],
        mismatches=mismatches,
        tolerances={f: t.describe() for f, t in tolerances.items()},
        within_tolerance=within,
    )


def _compared_as_text(a: pl.DataType, b: pl.DataType) -> bool:
    if a == b:
        return False
    numbers = _is_number(a) and _is_number(b)
    stamps = isinstance(a, pl.Datetime) and isinstance(b, pl.Datetime)
    read = _is_text_and_stamp(a, b) or _is_text_and_stamp(b, a)
    read = read or (a == pl.String and _is_number(b)) or (b == pl.String and _is_number(a))
    return not (numbers or stamps or read)


def _apply_tolerances(
    matched: pl.DataFrame,
    fields: list[str],
    flags: list[str],
    s_names: dict[str, str],
    t_names: dict[str, str],
    tolerances: dict[str, Tolerance],
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Clear the difference flag of values that agree within their field's tolerance.

    Only rows that already differ exactly are asked, one Python comparison each, in exact
    decimal arithmetic (a float enters as its shortest round-trip text).
    """
    within: dict[str, int] = {}
    if not tolerances:
        return matched, within
    matched = matched.with_row_index("__row")
    for f, d in zip(fields, flags, strict=True):
        tolerance = tolerances.get(f)
        if tolerance is None:
            continue
        candidates = matched.filter(pl.col(d)).select("__row", s_names[f], t_names[f])
        agree = [row for row, a, b in candidates.iter_rows() if tolerance.within(a, b)]
        within[f] = len(agree)
        if agree:
            matched = matched.with_columns(
                pl.when(pl.col("__row").is_in(agree)).then(False).otherwise(pl.col(d)).alias(d)
            )
    return matched.drop("__row"), within


def _examples(
    mismatches: pl.DataFrame, key: list[str], cap: int
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    capped = mismatches.group_by("field", maintain_order=True).head(cap)
    for row in capped.iter_rows(named=True):
        out.setdefault(row["field"], []).append(
            {
                "key": {k: _json_value(row[k]) for k in key},
                "field": row["field"],
                "source": row["source_value"],
                "target": row["target_value"],
            }
        )
    return out


# ---------------------------------------------------------------- PostgreSQL push-down

ROW_HASHES = ("native", "text", "md5")
# Built-in types whose hash equality matches value equality as reconcile() sees it
# (bool, bytea, char, name, ints, text, oid, floats, bpchar, varchar, date/time types,
# interval, numeric, uuid, jsonb). Anything else is hashed through its text output.
_NATIVE_HASH_OIDS = frozenset(
    {16, 17, 18, 19, 20, 21, 23, 25, 26, 700, 701, 1042, 1043, 1082, 1083, 1114, 1184}
    | {1186, 1266, 1700, 2950, 3802}
)


def _table_parts(table: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(table, str):
        return tuple(table.split(".", 1))
    return tuple(table)


@contextlib.contextmanager
def _snapshot(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """One read-only, repeatable-read transaction, with stable text output settings."""
    idle = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction():
        if idle:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Row hashes are taken over text output: both sides must print values alike.
        for setting in (
            "SET LOCAL TimeZone = 'UTC'",
            "SET LOCAL DateStyle = 'ISO, MDY'",
            "SET LOCAL IntervalStyle = 'postgres'",
            "SET LOCAL extra_float_digits = 1",
            "SET LOCAL bytea_output = 'hex'",
        ):
            conn.execute(setting)  # type: ignore[arg-type]
        yield


@dataclass
class _Side:
    conn: psycopg.Connection[Any]
    table: tuple[str, ...]
    key: list[str]
    fields: list[str]
    row_hash: str
    signature: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    sql_type: dict[str, str] = field(default_factory=dict)

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(*self.table)

    def describe(self) -> None:
        """Column type signatures and SQL type names; fails early on a missing column."""
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.key + self.fields)
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT {} FROM {} LIMIT 0").format(cols, self.ident))
            for col in cur.description or ():
                self.signature[col.name] = (col.type_code, col.precision, col.scale)
            cur.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                [self.ident.as_string(self.conn)],
            )
            self.sql_type = dict(cur.fetchall())

    def hash64(self, columns: list[str]) -> sql.Composable:
        """A bigint hash of ``columns`` for one row (NULL and '' hash differently).

        "native" hashes values with their types' own hash functions (no text output;
        about 3x cheaper, PostgreSQL 14+), falling back to text for other types;
        "text" hashes the ROW() text; "md5" is portable across major versions. The
        others are only stable within a major version, which can cost speed (every
        row a candidate) but never correctness: candidates are re-compared in full.
        """
        if self.row_hash == "native" and self.conn.info.server_version >= 140000:
            parts = [
                sql.Identifier(c) if self.signature[c][0] in _NATIVE_HASH_OIDS else _text(c)
                for c in columns
            ]
            return sql.SQL("hash_record_extended(ROW({}), 0)").format(sql.SQL(", ").join(parts))
        row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(_text(c) for c in columns))
        if self.row_hash == "md5":
            return sql.SQL("('x' || substr(md5({}), 1, 16))::bit(64)::bigint").format(row)
        return sql.SQL("hashtextextended({}, 0)").format(row)

    def bucket(self, buckets: int) -> sql.Composable:
        """Bucket number of a row's key; rows with a null key part go to bucket -1."""
        return sql.SQL("CASE WHEN {} = 1 THEN -1 ELSE abs({} % {}) END").format(
            _null_flag(self.key), self.hash64(self.key), sql.Literal(buckets)
        )


def _text(name: str) -> sql.Composable:
    return sql.SQL("{}::text").format(sql.Identifier(name))


def _null_flag(key: list[str]) -> sql.Composable:
    return sql.SQL("({})::int").format(
        sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(k)) for k in key)
    )


def _copy_csv(conn: psycopg.Connection[Any], query: sql.Composable) -> bytes:
    buf = io.BytesIO()
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        while data := copy.read():
            buf.write(data)
    return buf.getvalue()


def _pull_hashes(
    side: _Side, hashed: list[str], typed: list[str], where: sql.Composable | None
) -> pl.DataFrame:
    """Per row: null-key flag, key text(s), row hash, and any columns compared typed."""
    names = ["__nk", *(f"__k{i}" for i in range(len(side.key))), "__h"]
    exprs = [_null_flag(side.key), *(_text(k) for k in side.key), side.hash64(side.key + hashed)]
    # Explicit aliases: "id::text" would otherwise also be called "id".
    select = [
        sql.SQL("{} AS {}").format(e, sql.Identifier(n)) for e, n in zip(exprs, names, strict=True)
    ]
    select += [sql.Identifier(c) for c in typed]
    query = sql.SQL("SELECT {} FROM {}{}").format(
        sql.SQL(", ").join(select),
        side.ident,
        sql.SQL(" WHERE {}").format(where) if where is not None else sql.SQL(""),
    )
    schema = {n: pl.String for n in names} | {"__nk": pl.Int8, "__h": pl.Int64}
    if not typed:
        # COPY + polars' CSV reader: no Python object per row.
        data = _copy_csv(side.conn, query)
        if not data:
            return pl.DataFrame(schema=schema)
        return pl.read_csv(data, has_header=False, new_columns=names, schema=schema)
    frames = []
    with side.conn.cursor(name="aethon_reconcile") as cur:
        cur.execute(query)
        while rows := cur.fetchmany(50_000):
            frames.append(cursor_frame(cur, rows))
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames, how="vertical_relaxed")


def _fetch_rows(side: _Side, key_text: pl.DataFrame) -> pl.DataFrame:
    """Full typed rows whose key text is in ``key_text`` (columns __k0..)."""
    n = len(side.key)
    cols = sql.SQL(", ").join(
        sql.SQL("t.{}").format(sql.Identifier(c)) for c in side.key + side.fields
    )
    arrays = sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in range(n))
    aliases = sql.SQL(", ").join(sql.Identifier(f"__k{i}") for i in range(n))
    # Cast the key text back to the column type (text output round-trips), so the
    # join can use the key's index instead of casting every row of the table.
    cond = sql.SQL(" AND ").join(
        sql.SQL("t.{} = c.{}::{}").format(
            sql.Identifier(k),
            sql.Identifier(f"__k{i}"),
            sql.SQL(side.sql_type[k]),  # type: ignore[arg-type]
        )
        for i, k in enumerate(side.key)
    )
    query = sql.SQL("SELECT {} FROM {} AS t JOIN unnest({}) AS c({}) ON {}").format(
        cols, side.ident, arrays, aliases, cond
    )
    params = [key_text.get_column(f"__k{i}").to_list() for i in range(n)]
    with side.conn.cursor() as cur:
        cur.execute(query, params)
        return cursor_frame(cur, cur.fetchall())


def _bucket_sums(side: _Side, hashed: list[str], buckets: int) -> pl.DataFrame:
    query = sql.SQL(
        "SELECT b, count(*), sum(h) FROM (SELECT {} AS b, {} AS h FROM {}) AS x GROUP BY b"
    ).format(side.bucket(buckets), side.hash64(side.key + hashed), side.ident)
    with side.conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    return pl.DataFrame(
        {"b": [r[0] for r in rows], "n": [r[1] for r in rows], "s": [str(r[2]) for r in rows]},
        schema={"b": pl.Int64, "n": pl.Int64, "s": pl.String},
    )


def reconcile_postgres(
    conn_a: psycopg.Connection[Any],
    table_a: str | Sequence[str],
    conn_b: psycopg.Connection[Any],
    table_b: str | Sequence[str],
    key: Sequence[str],
    fields: Sequence[str],
    max_examples: int = 20,
    *,
    strategy: str = "rows",
    buckets: int = 4096,
    row_hash: str = "native",
    parallel: bool = True,
    tolerances: dict[str, Tolerance] | None = None,
) -> ReconcileReport:
    """:func:`reconcile` of two PostgreSQL tables, hashing rows inside the databases.

    ``table_*`` is ``"table"``, ``"schema.table"`` or a ``(schema, table)`` tuple.
    ``strategy="rows"`` pulls one (key, 64-bit hash) pair per row; ``"buckets"`` first
    compares per-bucket row counts and hash sums and pulls pairs only for buckets that
    differ (worth it when differences are few and the link is slow; used only when
    all compared columns have the same types on both sides). Either way only
    rows that may differ are fetched in full, and those are compared with
    :func:`reconcile`, so the report matches the in-memory one. Columns whose SQL
    types differ between the tables are pulled typed and compared in polars, since
    text output cannot be trusted to agree across types. ``row_hash`` is "native"
    (default), "text" or "md5" (portable across PostgreSQL major versions).
    The connections are used inside one read-only REPEATABLE READ transaction each
    (a savepoint if the caller already has a transaction open).
    """
    key = list(key)
    if not key:
        raise ValueError("At least one key column is required.")
    if strategy not in ("rows", "buckets") or row_hash not in ROW_HASHES:
        raise ValueError(f"strategy must be 'rows' or 'buckets'; row_hash one of {ROW_HASHES}")
    fields = [f for f in dict.fromkeys(fields) if f not in key]
    a = _Side(conn_a, _table_parts(table_a), key, fields, row_hash)
    b = _Side(conn_b, _table_parts(table_b), key, fields, row_hash)
    same_conn = conn_a is conn_b
    run = _runner(parallel and not same_conn)
    with _snapshot(conn_a), contextlib.nullcontext() if same_conn else _snapshot(conn_b):
        run(a.describe, b.describe)
        mixed = [c for c in key + fields if a.signature[c] != b.signature[c]]
        typed = [*key, *[f for f in fields if f in mixed]] if mixed else []
        hashed = [f for f in fields if f not in mixed]

        where, skipped = None, 0
        if strategy == "buckets" and not mixed:
            where, skipped, totals = _differing_buckets(a, b, hashed, buckets, run)
        pairs_a, pairs_b = run(
            lambda: _pull_hashes(a, hashed, typed, where),
            lambda: _pull_hashes(b, hashed, typed, where),
        )
        if where is None:
            totals = (pairs_a.height, pairs_b.height)
        cand_a, cand_b, stats = _candidates(pairs_a, pairs_b, key, mixed)
        rows_a, rows_b = run(lambda: _fetch_rows(a, cand_a), lambda: _fetch_rows(b, cand_b))

    rows_a, rows_b = _fill_null_dtypes(rows_a, rows_b), _fill_null_dtypes(rows_b, rows_a)
    report = reconcile(rows_a, rows_b, key, fields, max_examples, tolerances)
    matched = stats["matched"] + skipped
    return dataclasses.replace(
        report,
        source_count=totals[0],
        target_count=totals[1],
        matched_count=matched,
        equal_count=matched - report.mismatched_count,
        null_keys_source=stats["nulls_a"],
        null_keys_target=stats["nulls_b"],
        duplicate_rows_source=stats["dups_a"],
        duplicate_rows_target=stats["dups_b"],
    )


def _fill_null_dtypes(frame: pl.DataFrame, other: pl.DataFrame) -> pl.DataFrame:
    """An empty or all-null candidate column has no dtype of its own; the full table
    would have had one, as the other side shows. Borrow it so keys align as in memory."""
    casts = [
        pl.col(c).cast(other.schema[c])
        for c, dtype in frame.schema.items()
        if dtype == pl.Null and other.schema.get(c, pl.Null) != pl.Null
    ]
    return frame.with_columns(casts) if casts else frame


def _differing_buckets(
    a: _Side, b: _Side, hashed: list[str], buckets: int, run: Callable[..., tuple[Any, ...]]
) -> tuple[sql.Composable, int, tuple[int, int]]:
    """WHERE clause selecting rows in buckets whose (count, hash sum) differ.

    Also returns the rows skipped as equal and the two table totals. Null keys land in
    bucket -1, which is always pulled so they are counted like in memory.
    """
    sums_a, sums_b = run(
        lambda: _bucket_sums(a, hashed, buckets), lambda: _bucket_sums(b, hashed, buckets)
    )
    cmp = sums_a.join(sums_b, on="b", how="full", coalesce=True, suffix="_b")
    same = (
        (pl.col("n") == pl.col("n_b")) & (pl.col("s") == pl.col("s_b")) & (pl.col("b") >= 0)
    ).fill_null(False)
    skipped = int(cmp.filter(same).get_column("n").sum() or 0)
    todo = sorted({-1, *cmp.filter(~same).get_column("b").to_list()})
    where = sql.SQL("{} = ANY({})").format(a.bucket(buckets), sql.Literal(todo))
    totals = (int(sums_a.get_column("n").sum() or 0), int(sums_b.get_column("n").sum() or 0))
    return where, skipped, totals


def _candidates(
    pairs_a: pl.DataFrame, pairs_b: pl.DataFrame, key: list[str], mixed: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Key texts, per side, of rows that may differ: unmatched, or hash/typed value differs."""
    k_text = [f"__k{i}" for i in range(len(key))]
    stats: dict[str, int] = {}
    kept = []
    for tag, pairs in (("a", pairs_a), ("b", pairs_b)):
        ok = pairs.filter(pl.col("__nk") == 0)
        stats[f"nulls_{tag}"] = pairs.height - ok.height
        kept.append(ok)
    pa, pb = kept
    join_on = k_text
    if any(k in mixed for k in key):
        # Key types differ: match keys the way reconcile() does, on aligned typed values.
        pa, pb = align_keys(pa, pb, key)
        join_on = key
    ua, ub = _first_per_key(pa, join_on), _first_per_key(pb, join_on)
    stats["dups_a"], stats["dups_b"] = pa.height - ua.height, pb.height - ub.height

    ua = ua.with_columns(pl.lit(True).alias("__in_a"))
    ub = ub.with_columns(pl.lit(True).alias("__in_b"))
    j = ua.join(ub, on=join_on, how="full", coalesce=False, suffix="__b")
    in_a, in_b = pl.col("__in_a").is_not_null(), pl.col("__in_b").is_not_null()
    both = in_a & in_b
    stats["matched"] = j.filter(both).height
    diff = pl.col("__h") != pl.col("__h__b")
    for col in mixed:
        if col not in key:
            diff = diff | differs(pl.col(col), pa.schema[col], pl.col(f"{col}__b"), pb.schema[col])
    cand = j.filter(~both | diff)
    cand_a = cand.filter(in_a).select(k_text)
    # With coalesce=False the B side's key texts carry the suffix in both join modes.
    cand_b = cand.filter(in_b).select(pl.col(f"{c}__b").alias(c) for c in k_text)
    return cand_a, cand_b, stats


def _first_per_key(frame: pl.DataFrame, on: list[str]) -> pl.DataFrame:
    # The uniqueness check is far cheaper than an order-preserving unique().
    if frame.select(pl.struct(on).n_unique()).item() == frame.height:
        return frame
    return frame.unique(subset=on, keep="first", maintain_order=True)


def _runner(parallel: bool) -> Callable[..., tuple[Any, ...]]:
    """Run the A-side and B-side steps concurrently (each has its own connection)."""

    def run(*tasks: Callable[[], Any]) -> tuple[Any, ...]:
        if not parallel:
            return tuple(task() for task in tasks)
        with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
            futures = [pool.submit(task) for task in tasks]
            return tuple(f.result() for f in futures)

    return run
