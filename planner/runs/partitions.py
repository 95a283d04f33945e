"""Large runs on SQL systems split into key ranges that any number of workers compare at once.

A run whose source holds more than ``AETHON_RUN_PARTITION_ROWS`` rows with a whole key is cut
at every n-th key of the source in the streamed read's order (ROW_NUMBER in SQL, the push-down's
``RangeSide.boundaries``), so a key's duplicates always fall in one range; the last range also
reads the rows with a null key part, so they are counted once. Each range is one Celery task
(planner.runs.service.execute_partition) running the ordinary key-ordered pass
(planner.runs.streamed) over its span; its :class:`~planner.runs.streamed.Partial` is stored
here (counts and examples as JSON on the partition, the difference lists as Arrow IPC files
next to the run's differences file) until the last range to finish combines them in key order
into the same figures, lists and examples one pass over every key gives.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from typing import Any

import polars as pl
from django.core.files.base import ContentFile
from django.core.serializers.json import DjangoJSONEncoder

from planner.connectors.base import ConnectorError
from planner.mapping.engine import Violation
from planner.models import FieldMapping, RunPartition, ValidationRun
from planner.runs.chunked import MergeState
from planner.runs.partition_progress import describe, progress_of  # noqa: F401 - used here too
from planner.runs.pushdown import KeySpan, RangeSide, kinds
from planner.runs.reconcile import ReconcileReport
from planner.runs.stages import Side, _plans
from planner.runs.streamed import (
    Context,
    Partial,
    Streamed,
    _MappingTotals,
    reads_in_key_order,
    source_order,
)

FRAMES = ("missing_in_target", "extra_in_target", "mismatches")


# ---------------------------------------------------------------------------------------------
# Planning


def validation_order(source: Side, target: Side, rows: list[FieldMapping]) -> list[str] | str:
    """The source fields the streamed pass sorts by (the target key, mapped), or why none."""
    if source.head is None or target.head is None:
        return "a side's columns are not known"
    plans, _broken = _plans(rows)
    columns = set(source.head.columns)
    usable = [p for p in plans if p.fields <= columns]
    return source_order(source, target, usable)


def plan_spans(
    left: Side, right: Side, left_key: list[str], rows_per_partition: int
) -> list[KeySpan] | str:
    """The key spans of a run (at least two), or why it stays one task.

    ``left_key`` is the left side's fields in the order of the right side's key. Boundaries are
    every n-th whole key of the left side in the order both reads use (text by its bytes).
    """
    if rows_per_partition <= 0:
        return "partitions are off (AETHON_RUN_PARTITION_ROWS is 0)"
    if left.head is None or right.head is None:
        return "a side's columns are not known"
    for side in (left, right):
        if not reads_in_key_order(side) or not getattr(side.connector, "dialect", None):
            return f"{side.label} is not a SQL system"
    left_kinds = [kinds(left).get(k) for k in left_key]
    right_kinds = [kinds(right).get(k) for k in right.key]
    if len(left_kinds) != len(right_kinds) or any(
        k not in ("string", "integer") for k in left_kinds
    ):
        return "key ranges need text or integer keys"
    if left_kinds != right_kinds:
        return "the key is of a different kind on each side"
    connector = left.connector
    try:
        with connector.statements() as run:  # type: ignore[union-attr]
            side = RangeSide(run, connector.dialect, left_key, left_kinds, [])  # type: ignore[union-attr,arg-type]
            rows = side.count()
            if rows <= rows_per_partition:
                return (
                    f"{rows:,} rows: one task (AETHON_RUN_PARTITION_ROWS is {rows_per_partition:,})"
                )
            parts = -(-rows // rows_per_partition)
            cuts = side.boundaries(None, None, -(-rows // parts))
    except ConnectorError as exc:
        return f"the source could not be split into key ranges ({exc})"
    if not cuts:
        return "every row has the same key"
    edges: list[tuple[Any, ...] | None] = [None, *cuts, None]
    return [KeySpan(lo, hi, null_keys=hi is None) for lo, hi in zip(edges, edges[1:], strict=False)]


def span_of(partition: RunPartition) -> KeySpan:
    lo = tuple(partition.lo) if partition.lo is not None else None
    hi = tuple(partition.hi) if partition.hi is not None else None
    return KeySpan(lo, hi, partition.null_keys)


# ---------------------------------------------------------------------------------------------
# The mapping as the run started


def mapping_snapshot(rows: list[FieldMapping]) -> list[dict[str, Any]]:
    fields = [f.attname for f in FieldMapping._meta.concrete_fields]
    raw = [{name: getattr(row, name) for name in fields} for row in rows]
    return json.loads(json.dumps(raw, cls=DjangoJSONEncoder))


def mapping_rows(snapshot: list[dict[str, Any]]) -> list[FieldMapping]:
    """Unsaved rows carrying the snapshot's values (only read, never saved)."""
    return [FieldMapping(**values) for values in snapshot]


# ---------------------------------------------------------------------------------------------
# Partials: stored by each partition, combined by the last


def _storage():
    return ValidationRun._meta.get_field("differences_file").storage


def _frame_name(partition: RunPartition, name: str) -> str:
    run = partition.run
    return (
        f"runs/{run.project_id}/run-{run.pk}-part-{partition.index}"
        f"-{partition.attempt}-{name}.arrow"
    )


def store_partial(partition: RunPartition, streamed: Streamed) -> dict[str, Any]:
    """Write the pass's difference lists as files; returns the JSON the row keeps."""
    partial, context = streamed.partial, streamed.context
    assert partial is not None and context is not None
    report = partial.report
    files = {}
    storage = _storage()
    for name in FRAMES:
        buffer = io.BytesIO()
        getattr(report, name).write_ipc(buffer)
        target = _frame_name(partition, name)
        if storage.exists(target):
            storage.delete(target)
        files[name] = storage.save(target, ContentFile(buffer.getvalue()))
    counts = {
        name: getattr(report, name)
        for name in (
            "key",
            "fields",
            "source_count",
            "target_count",
            "matched_count",
            "equal_count",
            "mismatch_counts",
            "examples",
            "null_keys_source",
            "null_keys_target",
            "duplicate_rows_source",
            "duplicate_rows_target",
            "compared_as_text",
            "tolerances",
            "within_tolerance",
        )
    }
    mapping = None
    if partial.mapping is not None:
        m = partial.mapping
        mapping = {
            "records": m.records,
            "violations": m.violations,
            "key_columns": m.key_columns,
            "examples": [
                {
                    "key": list(v.key) if isinstance(v.key, tuple) else v.key,
                    "compound": isinstance(v.key, tuple),
                    "field": v.field,
                    "value": v.value,
                    "reason": v.reason,
                }
                for v in m.examples
            ],
        }
    out = {
        "context": {
            "usable": [p.spec.target_field for p in context.usable],
            "broken": context.broken,
            "not_compared": context.not_compared,
            "broken_tolerances": context.broken_tolerances,
            "figures": context.figures,
        },
        "report": counts,
        "files": files,
        "state": asdict(partial.state),
        "mapping": mapping,
        "walk": partial.walk,
    }
    return json.loads(json.dumps(out, cls=DjangoJSONEncoder))


def load_partial(result: dict[str, Any]) -> Partial:
    storage = _storage()
    frames = {}
    for name, path in result["files"].items():
        with storage.open(path, "rb") as fh:
            frames[name] = pl.read_ipc(io.BytesIO(fh.read()))
    report = ReconcileReport(**result["report"], **frames)
    mapping = None
    if (m := result.get("mapping")) is not None:
        mapping = _MappingTotals(key_columns=m["key_columns"], records=m["records"])
        mapping.violations = m["violations"]
        mapping.examples = [
            Violation(
                tuple(e["key"]) if e["compound"] else e["key"], e["field"], e["value"], e["reason"]
            )
            for e in m["examples"]
        ]
    return Partial(report, MergeState(**result["state"]), mapping, result.get("walk"))


def drop_partials(run_id: int) -> None:
    """Delete the partitions' difference lists (once merged, or the run ended without them)."""
    storage = _storage()
    for result in RunPartition.objects.filter(run_id=run_id).values_list("result", flat=True):
        for path in (result or {}).get("files", {}).values():
            if storage.exists(path):
                storage.delete(path)


def load_context(result: dict[str, Any], rows: list[FieldMapping]) -> Context:
    """A stored pass's shared plan, its field plans rebuilt from the run's mapping rows."""
    stored = result["context"]
    plans = {p.spec.target_field: p for p in _plans(rows)[0]}
    return Context(
        [plans[name] for name in stored["usable"]],
        stored["broken"],
        stored["not_compared"],
        stored["broken_tolerances"],
        stored["figures"],
    )
