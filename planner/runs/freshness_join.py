"""Freshness of two tables of one PostgreSQL database, measured by a join inside it.

When both sides are tables one session reads (:func:`planner.runs.joined.why_not_joined`),
the mapped fields' rules compile to SQL (the reconciliation's choice,
:func:`planner.runs.pushdown.choose_columns`) and both change-time fields are dates or
timestamps, the database joins the source's records changed since the read's start with
the target's (the same filters the read path pushes down) and judges each record by the
definitions of :func:`planner.metrics.freshness.sql_facts`:

* a record that is not late now, whose target is absent or agrees as the engine and the
  reconciliation would find it, is sent only as a count of alike records (the same facts
  and lag): one row per distinct lag, not per record;
* a record late now is sent with its key and both times when SQL's own equality is the
  read path's comparison (identity fields of matching types, no rule check or guard) and it
  is among the first late records by key that a measurement keeps as examples; the others
  are counted alike, with the earliest change among them;
* every other record (late now under a rule, a target that may differ, a rule's check or
  guard firing, a time SQL cannot turn into an instant) is sent by key, read whole, both
  sides side by side, in key order, and judged in the worker exactly as the read path judges
  it (the mapping engine and :func:`planner.runs.freshness.judge_range`).

Both kinds are folded by the one :class:`planner.metrics.freshness.FreshnessTally`, so every
figure and example comes out of the same functions as on the read path. A join pairs rows
as the read path does only when no key repeats, so a repeated key (and anything else
:func:`planner.runs.joined.prepare` refuses) sends the measurement back to the read path,
which says why (``join_blocked``). On a single integer key the join runs as two halves in
two sessions on one snapshot, as the reconciliation's does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from psycopg import sql

from planner.connectors.base import ConnectorError
from planner.connectors.postgres import PostgresConnector, copy_item
from planner.mapping.engine import FieldPlan
from planner.mapping.sql import column, render
from planner.metrics import freshness as lag
from planner.runs.joined import (
    _IN,
    _TEXT_OIDS,
    INT_COLUMN,
    Comparison,
    Prepared,
    comparison,
    in_halves,
    prepare,
    raw_comparable,
    select_list,
    split_sides,
    why_not_joined,
)
from planner.runs.pushdown import Choice, choose_columns
from planner.runs.stages import Side

_TIMESTAMPTZ, _TIMESTAMP, _DATE = 1184, 1114, 1082
_INT8 = 20


@dataclass(frozen=True)
class _Column:
    """A column of the join's result, described as psycopg describes one (for COPY)."""

    name: str
    type_code: int
    precision: int | None = None
    scale: int | None = None


def _renamed(prefix: str, col: Any) -> _Column:
    return _Column(f"{prefix}{col.name}", col.type_code, col.precision, col.scale)


@dataclass
class Setup:
    """What a measurement hands the join: its mapping and fields, times and filters."""

    usable: list[FieldPlan]
    fields: list[str]
    order: list[str]
    tolerances: dict
    presence_only: bool
    source_time: str
    target_time: str
    source_from: datetime | None
    target_from: datetime | None


def choice_for(source: Side, target: Side, setup: Setup) -> Choice:
    """The reconciliation's choice of compared columns; a "new records" basis compares none."""
    if setup.presence_only:
        return choose_columns(source, target, [], [], {}, setup.order)
    return choose_columns(source, target, setup.usable, setup.fields, setup.tolerances, setup.order)


def why_not(source: Side, target: Side, choice: Choice) -> str | None:
    """Why the join cannot measure (None: the sides are not both PostgreSQL at all)."""
    return why_not_joined(source, target, choice)


def _instant(expr: str, oid: int) -> str | None:
    """A change-time column as a timestamptz, read as the worker reads it (a timestamp
    without zone and a date's midnight are UTC); None for a type the worker parses."""
    if oid == _TIMESTAMPTZ:
        return expr
    if oid == _TIMESTAMP:
        return f"({expr} AT TIME ZONE 'UTC')"
    if oid == _DATE:
        return f"(CAST({expr} AS timestamp) AT TIME ZONE 'UTC')"
    return None


def _since(conn: Any, name: str, instant: datetime | None) -> str | None:
    """The read path's pushed-down filter (``PostgresConnector.fetch_ordered``), verbatim."""
    if instant is None:
        return None
    return sql.SQL("{} >= {}").format(sql.Identifier(name), sql.Literal(instant)).as_string(conn)


def _where(*conditions: str | None) -> str:
    present = [f"({c})" for c in conditions if c]
    return f" WHERE {' AND '.join(present)}" if present else ""


# How the database sends a record: the facts as bits, or whole, or as a null key.
_BITS = {lag.KNOWN: 1, lag.REFLECTED: 2, lag.COUNTED: 4, lag.DECIDED: 8}
_MEASURED = 15  # known, reflected, counted (so decided)
LATE, NULL_KEY, WHOLE = 16, 32, 64
# A record late now beyond the examples is counted in the database: this flag and its facts,
# grouped with the others alike, with the earliest change among them.
LATE_COUNTED = 128


def _judged_sql(
    setup: Setup,
    comp: Comparison,
    prepared: Prepared,
    window: lag.Window,
    wheres: tuple[str | None, str | None],
    ranges: tuple[str, str] | None,
    exact: bool,
) -> str:
    """The records of the join in groups, each judged once: ``__k…`` (the key of a record
    kept apart), ``__diff``, ``__n``, ``__st``, ``__tt``, ``__agrees`` and the facts
    ``__m`` (measured), ``__nk`` (a null key part), ``__whole``, ``__late``, ``__bits``.

    The grouping passes over every record and keeps only what tells the records apart: a
    measured record (counted and reflected, most of them) by the difference of its times
    alone, any other by its key, so it stays a group of one whose times are its own. It
    groups by as little as tells them apart (each column grouped by costs every record a
    hash and a comparison) and gathers a record's own time and agreement only for the
    records kept apart. The groups (far fewer rows) are then judged by the definitions of
    :func:`planner.metrics.freshness.sql_facts`."""
    d = "postgres"
    s_oids = {c.name: c.type_code for c in prepared.s_cols}
    t_oids = {c.name: c.type_code for c in prepared.t_cols}
    s_time = _instant(f"__s.{render(column(setup.source_time), d)}", s_oids[setup.source_time])
    t_time = _instant(f"__t.{render(column(setup.target_time), d)}", t_oids[setup.target_time])
    assert s_time is not None and t_time is not None  # measure_joined checked both
    fields = [] if setup.presence_only else setup.fields
    flagged = f"({comp.flagged})" if fields else "false"
    keys = [f"__s.{render(column(k), d)}" for k in setup.order]
    present = f"__t.{_IN} IS NOT NULL"
    agrees = f"({present} AND NOT {flagged})"
    measured = lag.sql_facts(window, s_time, t_time, agrees)["measured_if"]
    kept = [f"CASE WHEN {measured} THEN NULL ELSE {k} END" for k in keys]
    # A record kept apart with its first key part: its own time and agreement are gathered.
    # (One with a null first key part is only counted, as any record with a null key part.)
    apart = f"FILTER (WHERE {kept[0]} IS NOT NULL)"
    per_record = ", ".join(
        [
            *(f"{k} AS __k{i}" for i, k in enumerate(kept)),
            # The target's time is this difference after the source's: no aggregate of its
            # own. Without a source's time it is the target's time less itself, which fails
            # on 'infinity' as any difference with an infinite time does.
            f"{t_time} - COALESCE({s_time}, {t_time}) AS __diff",
            "COUNT(*) AS __n",
            f"MIN({s_time}) {apart} AS __st",
            f"bool_or({agrees}) {apart} AS __agrees",
            # Whether a target is there tells only which records to read whole.
            *([] if exact else [f"bool_or({present}) {apart} AS __present"]),
        ]
    )
    first_groups = ", ".join(str(i) for i in range(1, len(keys) + 2))
    # A measured record's times are both there (so is its difference) and its key is not
    # kept; a record not measured whose first key part is null has no target (a null never
    # joins), so no difference either.
    m = "(__k0 IS NULL AND __diff IS NOT NULL)"
    null_key = f"({' OR '.join(f'__k{i} IS NULL' for i in range(len(keys)))})"
    # Sessions are in UTC, so a difference's days are 24 hours: the time comes back exactly.
    facts = lag.sql_facts(window, "__st", "__tt", "__agrees")
    bits = " + ".join(f"CASE WHEN {facts[f]} THEN {b} ELSE 0 END" for f, b in _BITS.items())
    # 'infinity' is no instant the worker can read: such a record is sent whole, and its
    # COPY fails as the read path's does (where the first grouping's subtraction does not
    # fail already); either way the measurement falls back to the read path.
    whole = "NOT isfinite(__st) OR NOT isfinite(__tt)"
    if not exact:
        whole = f"(__present AND NOT __agrees) OR {facts['late']} OR {whole}"
    key_cols = ", ".join(f"__k{i}" for i in range(len(keys)))
    s_range, t_range = ranges or (None, None)
    carried = f"{key_cols}, __diff, __n, __st, __agrees{'' if exact else ', __present'}"
    # Each group's target time and facts are worked out once (OFFSET 0 keeps the planner
    # from copying the expressions into every place that reads them).
    return (
        f"SELECT {key_cols}, __diff, __n, __st, __tt, __agrees, {m} AS __m,"  # noqa: S608
        f" {null_key} AS __nk, COALESCE({whole}, false) AS __whole,"
        f" COALESCE({facts['late']}, false) AS __late, {bits} AS __bits"
        f" FROM (SELECT {carried}, CASE WHEN NOT {m} THEN __st + __diff END AS __tt"
        f" FROM (SELECT {per_record}"
        f" FROM (SELECT *, {comp.s_extra} FROM {prepared.s_data}{_where(s_range, wheres[0])})"
        f" AS __s LEFT JOIN (SELECT *, {comp.t_extra} FROM {prepared.t_data}"
        f"{_where(t_range, wheres[1])}) AS __t ON {' AND '.join(comp.on)}"
        f" GROUP BY {first_groups}) __a OFFSET 0) __b OFFSET 0"
    )


def _groups_sql(setup: Setup, prepared: Prepared, judged: str, examples: int) -> str:
    """Every record of the join as a count of alike records (``__code``, ``__lag``); a
    record late now is its own group, with its key and times (``LATE``) when ``exact`` (SQL
    tells whether its target agrees as the engine would) and it is among the first
    ``examples`` late records by key (the rest are counted alike, ``LATE_COUNTED``, with the
    earliest change among them), else with its key only, to be read whole and judged
    (``WHOLE``), as is any record whose target may differ. The groups of
    :func:`_judged_sql` (``judged``) are grouped again by their facts."""
    s_oids = {c.name: c.type_code for c in prepared.s_cols}
    key_cols = ", ".join(f"__k{i}" for i in range(len(setup.order)))
    order = []
    for i, k in enumerate(setup.order):
        collate = ' COLLATE "C"' if s_oids[k] in _TEXT_OIDS else ""
        order.append(f"__k{i}{collate} NULLS LAST")
    # A record late now and sent with its key (not read whole): the first ``examples`` of
    # them by key are examples, the rest are counted.
    late_sent = "(__late AND NOT (__m OR __nk OR __whole))"
    ranked = (
        f"SELECT *, {late_sent} AS __ls, row_number() OVER"  # noqa: S608
        f" (PARTITION BY {late_sent} ORDER BY {', '.join(order)}) AS __rank FROM ({judged}) __j"
    )
    example = f"(__ls AND __rank <= {int(examples)})"
    code = (
        f"CASE WHEN __m THEN {_MEASURED} WHEN __nk THEN {NULL_KEY} WHEN __whole THEN {WHOLE}"
        f" WHEN {example} THEN {LATE} WHEN __ls THEN {LATE_COUNTED} + __bits ELSE __bits END"
    )
    sent = "CASE WHEN __m OR __nk THEN NULL"
    picked = [
        f"{sent} WHEN __whole OR {example} THEN __k{i} END AS __k{i}"
        for i in range(len(setup.order))
    ]
    picked += [
        f"{sent} WHEN __whole THEN NULL WHEN {example} THEN __st END AS __s_at",
        f"{sent} WHEN __whole THEN NULL WHEN {example} THEN __tt END AS __t_at",
        f"{sent} WHEN __whole THEN NULL WHEN {example} THEN __agrees END AS __agrees",
        f"CASE WHEN __ls AND NOT {example} THEN __st END AS __oldest",
    ]
    lag_us = (
        # An interval from subtracting two instants holds days and a time: whole minutes
        # plus the microseconds within the minute are exact on every PostgreSQL version.
        "EXTRACT(EPOCH FROM date_trunc('minute', __lag))::bigint * 1000000"
        " + EXTRACT(MICROSECONDS FROM __lag)::bigint"
    )
    picked_keys = f"{key_cols}, __s_at, __t_at, __agrees"
    times = ", ".join(copy_item(None, _Column(f"__{x}_at", _TIMESTAMPTZ)).as_string() for x in "st")
    return (
        # Sorted outside the grouping: only the groups are sorted, not every record.
        f"SELECT __code, __lag_us, {lag.COUNT}, {key_cols}, {times}, __agrees"  # noqa: S608
        f" FROM (SELECT __code, {lag_us} AS __lag_us,"
        f" CAST(SUM(__n) AS bigint) AS {lag.COUNT}, {key_cols},"
        f" CASE WHEN __code >= {LATE_COUNTED} THEN MIN(__oldest) ELSE __s_at END AS __s_at,"
        f" __t_at, __agrees FROM (SELECT {code} AS __code,"
        f" CASE WHEN __m THEN {lag.sql_lag('__diff')} END AS __lag, __n,"
        f" {', '.join(picked)} FROM ({ranked}) __r) __p"
        f" GROUP BY __code, __lag, {picked_keys}) __g ORDER BY {', '.join(order)}"
    )


def _whole_sql(
    conn: Any,
    setup: Setup,
    t_key: list[str],
    comp: Comparison,
    prepared: Prepared,
    wheres: tuple[str | None, str | None],
    keys: list[tuple[Any, ...]],
) -> str:
    """The records of ``keys``, both sides side by side as the tables hold them, in key
    order (the target's under the same filter as in the join)."""
    d = "postgres"
    s_oids = {c.name: c.type_code for c in prepared.s_cols}
    text = [s_oids[k] in _TEXT_OIDS for k in setup.order]
    chosen = []
    for names in (setup.order, t_key):
        cols = [
            f"{render(column(k), d)}{' COLLATE "C"' if is_text else ''}"
            for k, is_text in zip(names, text, strict=True)
        ]
        if len(cols) == 1:
            # One array constant: an index on the key reads just these rows.
            values = sql.Literal([key[0] for key in keys]).as_string(conn)
            chosen.append(f"{cols[0]} = ANY(CAST({values} AS {'text' if text[0] else 'bigint'}[]))")
        else:
            rows = ", ".join(
                "(" + ", ".join(sql.Literal(v).as_string(conn) for v in key) + ")" for key in keys
            )
            chosen.append(f"({', '.join(cols)}) IN (VALUES {rows})")
    return (
        f"SELECT {select_list('__s', prepared.s_cols)}, __s.{_IN},"  # noqa: S608
        f" {select_list('__t', prepared.t_cols)}, __t.{_IN}"
        f" FROM (SELECT *, {comp.s_extra} FROM {prepared.s_data}{_where(chosen[0], wheres[0])})"
        f" AS __s LEFT JOIN (SELECT *, {comp.t_extra} FROM {prepared.t_data}"
        f"{_where(chosen[1], wheres[1])}) AS __t ON {' AND '.join(comp.on)}"
        f" ORDER BY {', '.join(comp.sort)}"
    )


def _half(setup: Setup, t_key: list[str], middle: int, part: int) -> tuple[str, str]:
    """Each side's WHERE for one half of the keys, as an index reads it; the records with a
    null key are counted apart (they are never measured)."""
    op = "<" if part == 0 else ">="
    s_col, t_col = (render(column(n), "postgres") for n in (setup.order[0], t_key[0]))
    return f"{s_col} {op} {int(middle)}", f"{t_col} {op} {int(middle)}"


def measure_joined(
    source: Side,
    target: Side,
    setup: Setup,
    choice: Choice,
    tally: lag.FreshnessTally,
    judge: Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame],
    *,
    batch_rows: int,
) -> dict[str, Any] | str:
    """Fold the measurement into ``tally`` by a join inside the database; returns the
    reading's figures, or why the join cannot give the read path's figures (then the
    caller measures on the read path, with a tally of its own).

    ``judge(source_rows, target_rows)`` judges records sent whole as the read path does
    (the rows as the tables hold them; the result has the key, both times and AGREES).
    """
    s_conn = source.connector
    assert isinstance(s_conn, PostgresConnector)
    t_key = list(target.key)
    counts = {"alike": 0, "null_key": 0, "late": 0}
    keys: list[tuple[Any, ...]] = []
    try:
        with s_conn.snapshot() as session:
            plans = [] if setup.presence_only else setup.usable
            fields = [] if setup.presence_only else setup.fields
            prepared = prepare(session, source, target, plans, fields, setup.order)
            if isinstance(prepared, str):
                return prepared
            s_oids = {c.name: c for c in prepared.s_cols}
            for label, cols, name in (
                ("source", prepared.s_cols, setup.source_time),
                ("target", prepared.t_cols, setup.target_time),
            ):
                oid = {c.name: c.type_code for c in cols}.get(name)
                if oid is None or _instant("x", oid) is None:
                    return (
                        f"the {label}'s change-time field {name} is not a date or timestamp"
                        " column, so its times are read in the worker"
                    )
            # The grouping's hash table starts at the size the planner reckons (a group per
            # record) as far as work_mem allows: a fresh session pays for every page of it
            # (64MB cost 7 ms a key half more than 8MB, for 500,000 records in 500 groups).
            # Records kept apart beyond it (read whole, or late) spill to disk in batches.
            prepared.settings.append("set_config('work_mem', '8MB', true)")
            # The planner reckons a group per record (it cannot know how few lags there are),
            # and would sort every record to group them, or share the sort among parallel
            # workers, once the table is large: hashing into the few real groups is always
            # cheaper, and the join already runs in one session per core.
            prepared.settings.append("set_config('enable_sort', 'off', true)")
            prepared.settings.append("set_config('max_parallel_workers_per_gather', '0', true)")
            session.rows(f"SELECT {', '.join(prepared.settings)}")
            comp = comparison(source, target, plans, fields, setup.order, choice, prepared)
            wheres = (
                _since(session.conn, setup.source_time, setup.source_from),
                _since(session.conn, setup.target_time, setup.target_from),
            )
            halves = prepared.halves
            exact = _sql_agrees_exactly(setup, choice, prepared)
            if halves is not None:
                null_key = f"{render(column(setup.order[0]), 'postgres')} IS NULL"
                counts["null_key"] = int(
                    session.rows(
                        f"SELECT COUNT(*) FROM {prepared.s_data}{_where(null_key, wheres[0])}"  # noqa: S608
                    )[0][0]
                )

            def query(part: int | None) -> str:
                ranges = None
                if halves is not None and part is not None:
                    ranges = _half(setup, t_key, halves.middle, part)
                judged = _judged_sql(setup, comp, prepared, tally.window, wheres, ranges, exact)
                return _groups_sql(setup, prepared, judged, tally.max_examples)

            key_cols = [_renamed("", s_oids[k]) for k in setup.order]
            columns = [
                _Column("__code", 23),
                _Column("__lag_us", _INT8),
                _Column(lag.COUNT, _INT8),
                *[
                    _Column(f"__k{i}", c.type_code, c.precision, c.scale)
                    for i, c in enumerate(key_cols)
                ],
                _Column("__s_at", _TIMESTAMPTZ),
                _Column("__t_at", _TIMESTAMPTZ),
                _Column("__agrees", 16),
            ]
            names = [c.name for c in columns]
            picked = [f"__k{i}" for i in range(len(key_cols))]
            code = pl.col("__code")
            with in_halves(s_conn, session, prepared, query, columns, names, batch_rows) as read:
                for frame in read():
                    counts["null_key"] += int(frame.filter(code == NULL_KEY)[lag.COUNT].sum())
                    alike = frame.filter(code < LATE)
                    if alike.height:
                        counts["alike"] += int(alike[lag.COUNT].sum())
                        tally.add_alike(
                            alike.select(
                                *[((code & bit) != 0).alias(name) for name, bit in _BITS.items()],
                                lag.seconds(pl.col("__lag_us")).alias(lag.LAG),
                                lag.COUNT,
                            )
                        )
                    late = frame.filter(code == LATE)
                    if late.height:
                        counts["late"] += late.height
                        tally.add(
                            late.select(
                                *[pl.col(p).alias(k) for p, k in zip(picked, t_key, strict=True)],
                                pl.col("__s_at").alias(lag.SOURCE_TIME),
                                pl.col("__t_at").alias(lag.TARGET_TIME),
                                pl.col("__agrees").alias(lag.AGREES),
                            )
                        )
                    counted = frame.filter(code >= LATE_COUNTED)
                    if counted.height:
                        counts["alike"] += int(counted[lag.COUNT].sum())
                        tally.add_alike(
                            counted.select(
                                *[((code & bit) != 0).alias(name) for name, bit in _BITS.items()],
                                pl.lit(None, dtype=pl.Float64).alias(lag.LAG),
                                lag.COUNT,
                            ),
                            oldest_late=counted["__s_at"].min(),
                        )
                    keys += frame.filter(code == WHOLE).select(picked).rows()
            # The records sent whole, in key order (the lower half first): the examples are
            # the read path's, the first late records by key. They are looked up by key and
            # sorted: the sort is the planner's to choose again.
            if keys:
                session.rows("SELECT set_config('enable_sort', 'on', true)")
            s_names = [f"s:{c.name}" for c in prepared.s_cols]
            t_names = [f"t:{c.name}" for c in prepared.t_cols]
            names = [*s_names, f"s:{_IN}", *t_names, f"t:{_IN}"]
            columns = [*prepared.s_cols, INT_COLUMN, *prepared.t_cols, INT_COLUMN]
            for start in range(0, len(keys), batch_rows):
                statement = _whole_sql(
                    session.conn,
                    setup,
                    t_key,
                    comp,
                    prepared,
                    wheres,
                    keys[start : start + batch_rows],
                )
                for frame in session.frames(statement, columns, names, batch_rows):
                    tally.add(judge(*split_sides(frame, s_names, t_names)))
    except ConnectorError as exc:
        return f"the database could not join the tables ({exc})"
    return {
        "mode": "joined",
        "halves": halves is not None,
        "source_rows": len(keys) + counts["late"] + counts["alike"] + counts["null_key"],
        "rows_sent_whole": len(keys),
        "rows_sent_late": counts["late"],
        "rows_counted_unread": counts["alike"],
        "null_keys_source": counts["null_key"],
    }


def _sql_agrees_exactly(setup: Setup, choice: Choice, prepared: Prepared) -> bool:
    """Whether SQL's own equality tells exactly whether a target agrees: no field is
    compared through a rule (each is an identity of matching types, compared as read) and
    no rule has a check or guard. Then a late record needs no engine: its key and times
    come with the grouping (the read path's key is the source's as read, too)."""
    if setup.presence_only or not setup.fields:
        return True
    s_oids = {c.name: c.type_code for c in prepared.s_cols}
    t_oids = {c.name: c.type_code for c in prepared.t_cols}
    by_target = {p.spec.target_field: p for p in setup.usable}
    for f in setup.fields:
        plan = by_target[f]
        if not raw_comparable(plan, s_oids.get(plan.spec.source_field), t_oids.get(f)):
            return False
    return all(
        not choice.pushed[p.spec.target_field].checks
        and choice.pushed[p.spec.target_field].guard is None
        for p in setup.usable
    )
