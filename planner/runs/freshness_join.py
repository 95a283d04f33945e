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
* every other record (late now, a target that may differ, a rule's check or guard firing,
  a time SQL cannot turn into an instant) is sent whole, both sides side by side, in key
  order, and judged in the worker exactly as the read path judges it (the mapping engine
  and :func:`planner.runs.freshness.judge_range`).

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
    Prepared,
    comparison,
    in_halves,
    prepare,
    split_sides,
    why_not_joined,
)
from planner.runs.pushdown import Choice, choose_columns
from planner.runs.stages import Side

_TIMESTAMPTZ, _TIMESTAMP, _DATE = 1184, 1114, 1082
_BOOL, _INT8 = 16, 20
ALIKE, WHOLE, NULL_KEY = 0, 1, 2  # how the database sends a record


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


def _query(
    source: Side,
    target: Side,
    setup: Setup,
    choice: Choice,
    prepared: Prepared,
    window: lag.Window,
    wheres: tuple[str | None, str | None],
    ranges: tuple[str, str] | None,
) -> tuple[str, list[Any]]:
    """The statement and the description of its columns."""
    plans = [] if setup.presence_only else setup.usable
    fields = [] if setup.presence_only else setup.fields
    comp = comparison(source, target, plans, fields, setup.order, choice, prepared)
    s_oids = {c.name: c.type_code for c in prepared.s_cols}
    t_oids = {c.name: c.type_code for c in prepared.t_cols}
    s_col = f"__s.{render(column(setup.source_time), 'postgres')}"
    t_col = f"__t.{render(column(setup.target_time), 'postgres')}"
    s_time = _instant(s_col, s_oids[setup.source_time])
    t_time = _instant(t_col, t_oids[setup.target_time])
    assert s_time is not None and t_time is not None  # measure_joined checked both
    present = f"__t.{_IN} IS NOT NULL"
    if setup.presence_only or not fields:
        agrees, unsure = present, "false"
    else:
        agrees, unsure = (
            f"({present} AND NOT ({comp.flagged}))",
            f"({present} AND ({comp.flagged}))",
        )
    facts = lag.sql_facts(window, s_time, t_time, agrees)
    null_key = " OR ".join(f"__s.{render(column(k), 'postgres')} IS NULL" for k in setup.order)
    # 'infinity' is no instant the worker can read: such a record is sent whole, and its
    # COPY fails as the read path's does.
    endless = f"NOT isfinite({s_col}) OR NOT isfinite({t_col})"
    kind = (
        f"CASE WHEN {null_key} THEN {NULL_KEY}"
        f" WHEN {unsure} OR {facts['late']} OR {endless} THEN {WHOLE} ELSE {ALIKE} END"
    )
    flags = [lag.KNOWN, lag.REFLECTED, lag.COUNTED, lag.DECIDED]
    s_cols = [*[_renamed("s:", c) for c in prepared.s_cols], _Column(f"s:{_IN}", 23)]
    t_cols = [*[_renamed("t:", c) for c in prepared.t_cols], _Column(f"t:{_IN}", 23)]
    raw = [
        f"__{side}.{render(column(c.name[2:]), 'postgres')} AS {render(column(c.name), 'postgres')}"
        for side, cols in (("s", s_cols), ("t", t_cols))
        for c in cols
    ]
    inner = ", ".join(
        [f"{kind} AS __kind"]
        + [f"{facts[f]} AS {f}" for f in flags]
        + [f"{facts[lag.LAG]} AS __lag", *raw]
    )
    whole = [
        f"CASE WHEN __kind = {WHOLE} THEN {render(column(c.name), 'postgres')} END"
        f" AS {render(column(c.name), 'postgres')}"
        for c in [*s_cols, *t_cols]
    ]
    group = ", ".join(["__kind", *flags, "__lag", "COUNT(*) AS __n", *whole])
    by = ", ".join(str(i) for i in range(1, 7 + len(whole) + 1) if i != 7)
    # An interval from subtracting two instants holds days and a time: whole minutes plus
    # the microseconds within the minute are exact on every PostgreSQL version.
    lag_us = (
        "EXTRACT(EPOCH FROM date_trunc('minute', __lag))::bigint * 1000000"
        " + EXTRACT(MICROSECONDS FROM __lag)::bigint"
    )
    described = [
        _Column("__kind", 23),
        *[_Column(f, _BOOL) for f in flags],
        _Column("__lag_us", _INT8),
        _Column(lag.COUNT, _INT8),
        *s_cols,
        *t_cols,
    ]
    outer = ", ".join(
        ["__kind", *flags, f"{lag_us} AS __lag_us", f"__n AS {lag.COUNT}"]
        + [copy_item(None, c).as_string() for c in [*s_cols, *t_cols]]
    )
    order = []
    s_kinds = {c.name: c.type_code for c in prepared.s_cols}
    for k in setup.order:
        collate = ' COLLATE "C"' if s_kinds[k] in (25, 1043) else ""
        order.append(f"{render(column('s:' + k), 'postgres')}{collate} NULLS LAST")
    s_range, t_range = ranges or (None, None)
    statement = (
        f"SELECT {outer} FROM (SELECT {group} FROM (SELECT {inner}"  # noqa: S608
        f" FROM (SELECT *, {comp.s_extra} FROM {prepared.s_data}{_where(s_range, wheres[0])})"
        f" AS __s LEFT JOIN (SELECT *, {comp.t_extra} FROM {prepared.t_data}"
        f"{_where(t_range, wheres[1])}) AS __t ON {' AND '.join(comp.on)} OFFSET 0) __r"
        f" GROUP BY {by}) __g ORDER BY {', '.join(order)}"
    )
    return statement, described


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
    counts = {"whole": 0, "alike": 0, "null_key": 0}
    try:
        with s_conn.snapshot() as session:
            plans = [] if setup.presence_only else setup.usable
            fields = [] if setup.presence_only else setup.fields
            prepared = prepare(session, source, target, plans, fields, setup.order)
            if isinstance(prepared, str):
                return prepared
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
            # The records sent whole are grouped by their own values: room for them in
            # memory, not on disk.
            prepared.settings.append("set_config('work_mem', '64MB', true)")
            session.rows(f"SELECT {', '.join(prepared.settings)}")
            wheres = (
                _since(session.conn, setup.source_time, setup.source_from),
                _since(session.conn, setup.target_time, setup.target_from),
            )
            described: list[Any] = []

            def query(part: int | None) -> str:
                ranges = prepared.ranges(setup.order, t_key, part)
                statement, cols = _query(
                    source, target, setup, choice, prepared, tally.window, wheres, ranges
                )
                described[:] = cols
                return statement

            query(None)
            columns = list(described)
            names = [c.name for c in columns]
            s_names = [c.name for c in columns if c.name.startswith("s:") and c.name != f"s:{_IN}"]
            t_names = [c.name for c in columns if c.name.startswith("t:") and c.name != f"t:{_IN}"]
            with in_halves(s_conn, session, prepared, query, columns, names, batch_rows) as read:
                for frame in read():
                    kinds = pl.col("__kind")
                    counts["null_key"] += int(frame.filter(kinds == NULL_KEY)[lag.COUNT].sum())
                    same = frame.filter(kinds == ALIKE)
                    if same.height:
                        counts["alike"] += int(same[lag.COUNT].sum())
                        tally.add_alike(
                            same.select(
                                lag.KNOWN,
                                lag.REFLECTED,
                                lag.COUNTED,
                                lag.DECIDED,
                                (pl.col("__lag_us") / 1_000_000).alias(lag.LAG),
                                lag.COUNT,
                            )
                        )
                    whole = frame.filter(kinds == WHOLE)
                    if whole.height:
                        counts["whole"] += whole.height
                        # In key order, the lower half first: the examples are the read
                        # path's, the first late records by key.
                        tally.add(judge(*split_sides(whole, s_names, t_names)))
    except ConnectorError as exc:
        return f"the database could not join the tables ({exc})"
    return {
        "mode": "joined",
        "halves": prepared.halves is not None,
        "source_rows": counts["whole"] + counts["alike"] + counts["null_key"],
        "rows_sent_whole": counts["whole"],
        "rows_counted_unread": counts["alike"],
        "null_keys_source": counts["null_key"],
    }
