"""A split run's key ranges in words and their progress, for pages and the API.

Apart from :mod:`planner.runs.partitions` so a page showing a run loads no polars.
"""

from __future__ import annotations

from typing import Any

from planner.models import RunPartition, ValidationRun


def describe(partition: RunPartition) -> str:
    """The keys of a partition in words, for pages and reasons."""

    def key(bound: list | None) -> str:
        return ", ".join(str(v) for v in bound) if bound is not None else ""

    if partition.lo is None and partition.hi is None:
        text = "every key"
    elif partition.lo is None:
        text = f"keys below {key(partition.hi)}"
    elif partition.hi is None:
        text = f"keys from {key(partition.lo)}"
    else:
        text = f"keys from {key(partition.lo)} below {key(partition.hi)}"
    return text + (" and null keys" if partition.null_keys else "")


def progress_of(run: ValidationRun) -> list[dict[str, Any]]:
    """Each key range's progress as the run page and the API show it (empty: one task)."""
    return [
        {
            "number": p.index + 1,
            "keys": describe(p),
            "status": p.status,
            "records_done": p.records_done,
            "attempt": p.attempt,
            "worker": p.worker,
            "error": p.error,
        }
        for p in RunPartition.objects.filter(run=run).order_by("index")
    ]
