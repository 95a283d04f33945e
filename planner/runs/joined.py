"""Compare two tables of one PostgreSQL database with a join inside it.

When the source and the target are tables that one session can read (same server, database,
role and password) and every compared column's rule compiles to SQL (planner.mapping.sql,
the same choice as the checksum push-down, :func:`planner.runs.pushdown.choose_columns`),
the database joins the two tables on the key and sends only the rows that may differ: keys
on one side only, rows with a null key part, rows whose mapped value differs from the
target's canonical text, rows a rule's check flags (a violation) and rows the SQL may read
differently from the engine (the compiled rules' guards). Those rows are read with both
sides side by side, mapped by the engine and compared by :func:`reconcile` in the worker,
so every difference, violation and example comes out of the same code as on the read path;
the rows the database found equal are only counted.

The join's semantics are the read path's only when no key repeats (a repeated key would
pair rows the read path never pairs), so a side's key must be unique: a unique index on key
columns, or a ``GROUP BY … HAVING`` that finds no repeat. Everything runs in one
repeatable-read session, so the counts and the join see the same data. Otherwise, and for
tolerances, samples and difference limits, the run reads every row instead and says why.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl

from planner.connectors.base import ConnectorError
from planner.connectors.postgres import PostgresConnector, Snapshot, copy_item, copyable
from planner.mapping.engine import FieldPlan
from planner.mapping.sql import canonical, column, render
from planner.runs.chunked import MergeState, compare_pairs, in_background
from planner.runs.pushdown import Choice, kinds
from planner.runs.reconcile import ReconcileReport
from planner.runs.stages import MAX_EXAMPLES, Side, is_identity

_INT_OIDS = frozenset({20, 21, 23})
_TEXT_OIDS = frozenset({25, 1043})  # text, varchar
# bool, floats (same width), numeric, date, timestamp, timestamptz
_RAW_OIDS = frozenset({16, 700, 701, 1700, 1082, 1114, 1184})
_BPCHAR_OID = 1042  # char(n): SQL compares it without its padding, the read path with it
_IN = "__aethon_in"
_FLAG = "__aethon_x"


@dataclass
class Joined:
    """The comparison of a join, and what it did (for the run's figures)."""

    report: ReconcileReport
    rows_read: tuple[int, int]  # per side: rows the database sent
    rows_equal: int  # per side: rows found equal inside the database, counted unread

    def figures(self) -> dict[str, Any]:
        return {
            "mode": "joined",
            "rows_read": list(self.rows_read),
            "rows_equal_unread": self.rows_equal,
        }


def joins_whole_tables(source: Side, target: Side) -> bool:
    """Whether a run would first try the join: both sides tables of one PostgreSQL database.
    Such a run is compared by one statement inside that database, so it is not split into
    key ranges for workers (when the join is then refused, the run reads in one task)."""
    s_conn, t_conn = source.connector, target.connector
    return isinstance(s_conn, PostgresConnector) and s_conn.same_database(t_conn)


def why_not_joined(source: Side, target: Side, choice: Choice) -> str | None:
    """Why the sides cannot be compared with a join in their database ("" when they can;
    None when they are not both PostgreSQL, so no join was ever possible)."""
    s_conn, t_conn = source.connector, target.connector
    if not isinstance(s_conn, PostgresConnector) or not isinstance(t_conn, PostgresConnector):
        return None
    if not s_conn.same_database(t_conn):
        return "the sides are not tables of one PostgreSQL database read with the same login"
    if choice.blocker:
        return choice.blocker
    return ""


def key_unique(session: Snapshot, dataset: str, table: str, key: list[str]) -> str:
    """How the key is known not to repeat: "index" (a unique index on key columns),
    "checked" (no two rows hold one key value), or "" when a key value repeats."""
    (indexed,) = session.rows(
        "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = CAST(%s AS regclass)"
        " AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indexrelid"
        " AND a.attnum <= i.indnkeyatts AND NOT (a.attname = ANY(CAST(%s AS text[])))))",
        [table, key],
    )[0]
    if indexed:
        return "index"
    cols = ", ".join(render(column(k), "postgres") for k in key)
    whole = " AND ".join(f"{render(column(k), 'postgres')} IS NOT NULL" for k in key)
    (repeated,) = session.rows(
        f"SELECT EXISTS (SELECT 1 FROM {dataset} WHERE {whole}"  # noqa: S608
        f" GROUP BY {cols} HAVING COUNT(*) > 1)"
    )[0]
    return "" if repeated else "checked"


@dataclass
class Prepared:
    """One snapshot's view of both tables, ready for a join: their SQL names and columns,
    the session settings, and (on a single integer key) how the join is split in two."""

    s_data: str
    t_data: str
    s_cols: list[Any]
    t_cols: list[Any]
    settings: list[str]
    halves: _Halves | None

    @property
    def tables(self) -> tuple[tuple[str, list[Any]], tuple[str, list[Any]]]:
        return (self.s_data, self.s_cols), (self.t_data, self.t_cols)

    def ranges(
        self, order: list[str], t_key: list[str], part: int | None
    ) -> tuple[str, str] | None:
        """Each side's WHERE for one half (``part`` 0 or 1), or None for the whole join."""
        if self.halves is None or part is None:
            return None
        return _range(order[0], t_key[0], self.halves.middle, part, self.halves.nulls)


def prepare(
    session: Snapshot,
    source: Side,
    target: Side,
    plans: list[FieldPlan],
    fields: list[str],
    order: list[str],
) -> Prepared | str:
    """What a join of the sides needs, set up in ``session``; or why the join would not give
    the read path's result (a column COPY cannot carry, a repeated key)."""
    s_conn, t_conn = source.connector, target.connector
    assert isinstance(s_conn, PostgresConnector) and isinstance(t_conn, PostgresConnector)
    t_key = list(target.key)
    s_data, t_data = session.dataset(s_conn), session.dataset(t_conn)
    s_cols, t_cols = session.columns(s_data), session.columns(t_data)
    why = columns_blocked(s_cols, t_cols, plans, order, t_key, fields)
    if why:
        return why
    unique = []
    for label, data, key in (("source", s_data, order), ("target", t_data, t_key)):
        unique.append(key_unique(session, data, data, key))
        if not unique[-1]:
            return f"a key value repeats in the {label}, and a join would pair its rows"
    # JIT compiling the comparison costs more than it saves on a scan of this size;
    # two unique indexes on integer keys give a merge join that needs no hash table.
    settings = ["set_config('jit', 'off', true)"]
    integer_key = all(k == "integer" for k in _key_kinds(source, order))
    if unique == ["index", "index"] and integer_key:
        settings.append("set_config('enable_hashjoin', 'off', true)")
    session.rows(f"SELECT {', '.join(settings)}")
    halves = None
    if integer_key and len(order) == 1:
        indexed = unique == ["index", "index"]
        halves = _halves(session, (s_data, order[0]), (t_data, t_key[0]), indexed)
    return Prepared(s_data, t_data, s_cols, t_cols, settings, halves)


@contextlib.contextmanager
def in_halves(
    connector: PostgresConnector,
    session: Snapshot,
    prepared: Prepared,
    query: Callable[[int | None], str],
    columns: list[Any],
    names: list[str],
    batch_rows: int,
) -> Iterator[Callable[[], Iterator[pl.DataFrame]]]:
    """The frames of ``query`` (for half 0 then 1, or None for the whole join), as a call
    that starts the first half in ``session``; the second half is already being read, by a
    second session on the same snapshot, when the block is entered: two cores."""
    later: Iterator[pl.DataFrame] = iter(())
    if prepared.halves is not None:
        shared = prepared.halves.snapshot

        def upper() -> Iterator[pl.DataFrame]:
            with connector.snapshot(shared) as other:
                other.rows(f"SELECT {', '.join(prepared.settings)}")
                yield from other.frames(query(1), columns, names, batch_rows)

        later = in_background(upper())

    def frames() -> Iterator[pl.DataFrame]:
        first = session.frames(query(0 if prepared.halves else None), columns, names, batch_rows)
        return itertools.chain(first, later)

    try:
        yield frames
    finally:
        close = getattr(later, "close", None)
        if close is not None:
            close()


@contextlib.contextmanager
def _counting(
    connector: PostgresConnector, session: Snapshot, prepared: Prepared, count: str
) -> Iterator[Callable[[], tuple[int, int]]]:
    """Both tables' row counts, as a call. When the join runs in halves a third session on
    the same snapshot counts meanwhile, so the counts are on the path of neither half."""
    if prepared.halves is None:
        totals = session.rows(count)[0]
        yield lambda: totals
        return
    shared = prepared.halves.snapshot

    def counted() -> Iterator[tuple[int, int]]:
        with connector.snapshot(shared) as other:
            yield other.rows(count)[0]

    background = in_background(counted())
    try:
        yield lambda: next(background)
    finally:
        close = getattr(background, "close", None)
        if close is not None:
            close()


def joined_compare(
    source: Side,
    target: Side,
    plans: list[FieldPlan],
    fields: list[str],
    order: list[str],
    choice: Choice,
    map_chunk: Callable[[pl.DataFrame], pl.DataFrame],
    *,
    batch_rows: int,
    on_rows: Callable[[int], None],
    tolerances: dict | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Joined | str:
    """Differences of the mapped source and the target, found by a join in their database.

    ``map_chunk`` turns source rows as read into the compared frame (target key and
    ``fields``), recording the mapping stage's figures; ``on_total`` learns the rows of
    both tables (the join counts them). Returns why not when the join cannot promise the
    read path's result.
    """
    s_conn = source.connector
    assert isinstance(s_conn, PostgresConnector)
    t_key = list(target.key)
    try:
        with s_conn.snapshot() as session:
            prepared = prepare(session, source, target, plans, fields, order)
            if isinstance(prepared, str):
                return prepared
            s_data, t_data = prepared.s_data, prepared.t_data
            s_names = [f"s:{c.name}" for c in prepared.s_cols]
            t_names = [f"t:{c.name}" for c in prepared.t_cols]
            names = [*s_names, f"s:{_IN}", *t_names, f"t:{_IN}"]
            columns = [*prepared.s_cols, INT_COLUMN, *prepared.t_cols, INT_COLUMN]

            def query(part: int | None) -> str:
                ranges = prepared.ranges(order, t_key, part)
                return _join_sql(source, target, plans, fields, order, choice, prepared, ranges)

            count = f"SELECT (SELECT COUNT(*) FROM {s_data}), (SELECT COUNT(*) FROM {t_data})"  # noqa: S608
            with (
                in_halves(s_conn, session, prepared, query, columns, names, batch_rows) as read,
                _counting(s_conn, session, prepared, count) as totals,
            ):
                frames = read()
                counted = [0, 0]
                assert target.head is not None
                template = target.head.clear().select(*t_key)

                def pairs() -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
                    for frame in frames:
                        s_part, t_part = split_sides(frame, s_names, t_names)
                        counted[0] += s_part.height
                        counted[1] += t_part.height
                        on_rows(s_part.height + t_part.height)
                        yield map_chunk(s_part), t_part.select(*t_key, *fields)

                report = compare_pairs(
                    pairs(),
                    t_key,
                    fields,
                    template,
                    max_examples=MAX_EXAMPLES,
                    state=MergeState(),
                    tolerances=tolerances,
                )
                (s_total, t_total) = totals()
    except ConnectorError as exc:
        return f"the database could not join the tables ({exc})"
    if on_total is not None:
        on_total(int(s_total) + int(t_total))
    equal_s, equal_t = int(s_total) - counted[0], int(t_total) - counted[1]
    if equal_s != equal_t or equal_s < 0:
        # Only a repeated key (or data changing under a session that cannot see it) does this.
        return "the join's counts did not add up, so every row was read"
    on_rows(equal_s + equal_t)
    return Joined(report, (counted[0], counted[1]), equal_s)


def split_sides(
    frame: pl.DataFrame, s_names: list[str], t_names: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A frame of the join's rows as the source's rows and the target's, each under its own
    column names (a side absent from a row of the join is absent from its frame)."""
    s_part = frame.filter(pl.col(f"s:{_IN}").is_not_null()).select(
        pl.col(n).alias(n[2:]) for n in s_names
    )
    t_part = frame.filter(pl.col(f"t:{_IN}").is_not_null()).select(
        pl.col(n).alias(n[2:]) for n in t_names
    )
    return s_part, t_part


@dataclass(frozen=True)
class _Halves:
    snapshot: str  # exported, for the second session
    middle: int  # the upper half's first key
    nulls: bool  # whether the lower half must also read rows with a null key


def _halves(
    session: Snapshot, source: tuple[str, str], target: tuple[str, str], indexed: bool
) -> _Halves | None:
    """How to split the join in two, or None when not worth it. ``source`` and ``target``:
    (dataset, key column); ``indexed``: both keys have a unique index of their own."""
    s_data, s_key = source[0], render(column(source[1]), "postgres")
    low, high = session.rows(f"SELECT MIN({s_key}), MAX({s_key}) FROM {s_data}")[0]  # noqa: S608
    if low is None or high is None or int(high) - int(low) < 2:
        return None
    nulls = True
    if indexed:
        # "key < m OR key IS NULL" is no index condition: the lower half would walk the
        # whole index and filter. With an index, looking for a null key costs one probe,
        # and tables without one (the rule for a key) get a plain range.
        t_data, t_key = target[0], render(column(target[1]), "postgres")
        (nulls,) = session.rows(
            f"SELECT EXISTS (SELECT 1 FROM {s_data} WHERE {s_key} IS NULL)"  # noqa: S608
            f" OR EXISTS (SELECT 1 FROM {t_data} WHERE {t_key} IS NULL)"
        )[0]
    return _Halves(session.export(), (int(low) + int(high)) // 2, bool(nulls))


def _range(s_key: str, t_key: str, middle: int, part: int, nulls: bool) -> tuple[str, str]:
    """Each side's WHERE for one half: keys below ``middle`` (and null keys, when any), or
    the rest."""
    where = []
    for name in (s_key, t_key):
        col = render(column(name), "postgres")
        if part == 1:
            where.append(f"{col} >= {int(middle)}")
        elif nulls:
            where.append(f"({col} < {int(middle)} OR {col} IS NULL)")
        else:
            where.append(f"{col} < {int(middle)}")
    return where[0], where[1]


class _Described:
    """A column description for the presence flag (an int4), as psycopg describes one."""

    name = _IN
    type_code = 23
    precision = None
    scale = None


INT_COLUMN = _Described()


def columns_blocked(
    s_cols: list[Any],
    t_cols: list[Any],
    plans: list[FieldPlan],
    order: list[str],
    t_key: list[str],
    fields: list[str],
) -> str:
    if not copyable(s_cols) or not copyable(t_cols):
        return "a column's type is read through a cursor, not COPY"
    s_types = {c.name: c.type_code for c in s_cols}
    t_types = {c.name: c.type_code for c in t_cols}
    read = set(order).union(*(p.fields for p in plans))
    padded = [n for n in read if s_types.get(n) == _BPCHAR_OID]
    padded += [n for n in [*t_key, *fields] if t_types.get(n) == _BPCHAR_OID]
    if padded:
        return f"char(n) columns ({', '.join(sorted(set(padded)))}) compare without padding in SQL"
    if len(s_types) != len(s_cols) or len(t_types) != len(t_cols):
        return "a table has two columns of one name"
    return ""


def _key_kinds(source: Side, order: list[str]) -> list[str | None]:
    side_kinds = kinds(source)
    return [side_kinds.get(k) for k in order]


def select_list(alias: str, cols: list[Any]) -> str:
    return ", ".join(copy_item(alias, c).as_string() for c in cols)


def raw_comparable(plan: FieldPlan, s_oid: int | None, t_oid: int | None) -> bool:
    """Whether SQL's own equality of the two columns is the read path's comparison.

    An identity rule compares the source value as read (planner.runs.stages.as_read) with
    the target's; for these types the values polars reads compare as PostgreSQL compares
    them (exact numbers and instants, NaN equal to NaN, text by its bytes), so no canonical
    text need be printed for each row.
    """
    if not is_identity(plan) or plan.default is not None or s_oid is None or t_oid is None:
        return False
    if s_oid in _INT_OIDS and t_oid in _INT_OIDS:
        return True
    if s_oid in _TEXT_OIDS and t_oid in _TEXT_OIDS:
        return True
    return s_oid == t_oid and s_oid in _RAW_OIDS


@dataclass
class Comparison:
    """The SQL of a join of the two sides (aliases ``__s`` and ``__t``): each side's extra
    columns, the join condition, the key order, and what marks a row that may differ."""

    s_extra: str  # the source's presence flag, rule-check flag and compared values
    t_extra: str  # the target's presence flag and compared values
    on: list[str]
    sort: list[str]  # the key, source's else target's, in the read path's order
    flagged: str  # a rule's check or guard fires, or a compared value differs


def comparison(
    source: Side,
    target: Side,
    plans: list[FieldPlan],
    fields: list[str],
    order: list[str],
    choice: Choice,
    prepared: Prepared,
) -> Comparison:
    """How the join pairs rows and tells the ones that may differ (every other matched pair
    is equal, as the engine and :func:`reconcile` would find it)."""
    d = "postgres"
    s_oids = {c.name: c.type_code for c in prepared.s_cols}
    t_oids = {c.name: c.type_code for c in prepared.t_cols}
    by_target = {p.spec.target_field: p for p in plans}
    t_kinds = kinds(target)
    s_values, t_values, differs = [], [], []
    for f in fields:
        plan = by_target[f]
        read = plan.spec.source_field
        if raw_comparable(plan, s_oids.get(read), t_oids.get(f)):
            a, b = f"__s.{render(column(read), d)}", f"__t.{render(column(f), d)}"
            if s_oids[read] in _TEXT_OIDS:
                a, b = f'{a} COLLATE "C"', f'{b} COLLATE "C"'
            differs.append(f"{a} IS DISTINCT FROM {b}")
            continue
        value = canonical(column(f), t_kinds[f], d)
        assert not isinstance(value, str)  # choose_columns checked each
        i = len(s_values)
        s_values.append(render(choice.pushed[f].value, d))
        t_values.append(render(value, d))
        differs.append(f"__s.__aethon_v{i} IS DISTINCT FROM __t.__aethon_v{i}")
    flags = []
    for plan in plans:
        sql = choice.pushed[plan.spec.target_field]
        flags += [render(c, d) for _, c in sql.checks]
        if sql.guard is not None:
            flags.append(render(sql.guard, d))
    flag = f"CASE WHEN {' OR '.join(f'({f})' for f in flags)} THEN 1 ELSE 0 END" if flags else "0"
    s_extra = ", ".join(
        [f"1 AS {_IN}", f"{flag} AS {_FLAG}"]
        + [f"{v} AS __aethon_v{i}" for i, v in enumerate(s_values)]
    )
    t_extra = ", ".join([f"1 AS {_IN}"] + [f"{v} AS __aethon_v{i}" for i, v in enumerate(t_values)])
    s_kinds = kinds(source)
    on, sort = [], []
    for s_k, t_k in zip(order, target.key, strict=True):
        a, b = f"__s.{render(column(s_k), d)}", f"__t.{render(column(t_k), d)}"
        text = s_kinds.get(s_k) == "string"
        collate = ' COLLATE "C"' if text else ""
        on.append(f"{a}{collate} = {b}{collate}")
        sort.append(f"COALESCE({a}, {b}){collate} NULLS LAST")
    flagged = " OR ".join([f"__s.{_FLAG} = 1", *differs])
    return Comparison(s_extra, t_extra, on, sort, flagged)


def _join_sql(
    source: Side,
    target: Side,
    plans: list[FieldPlan],
    fields: list[str],
    order: list[str],
    choice: Choice,
    prepared: Prepared,
    ranges: tuple[str, str] | None = None,
) -> str:
    """The candidate rows of the join, both sides' columns side by side, in key order;
    ``ranges`` limits each side to part of the keys (a WHERE per side)."""
    c = comparison(source, target, plans, fields, order, choice, prepared)
    differs = [f"__s.{_IN} IS NULL", f"__t.{_IN} IS NULL", c.flagged]
    s_where = f" WHERE {ranges[0]}" if ranges else ""
    t_where = f" WHERE {ranges[1]}" if ranges else ""
    return (
        f"SELECT {select_list('__s', prepared.s_cols)}, __s.{_IN},"  # noqa: S608
        f" {select_list('__t', prepared.t_cols)}, __t.{_IN}"
        f" FROM (SELECT *, {c.s_extra} FROM {prepared.s_data}{s_where}) AS __s"
        f" FULL JOIN (SELECT *, {c.t_extra} FROM {prepared.t_data}{t_where}) AS __t"
        f" ON {' AND '.join(c.on)} WHERE {' OR '.join(differs)} ORDER BY {', '.join(c.sort)}"
    )
