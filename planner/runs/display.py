"""A run's stored figures shaped for its page (keys as text, examples grouped, labels)."""

from typing import Any

from planner.metrics import figures as kpis
from planner.models import RunStage, ValidationRun


def key_text(key: Any, order: list[str] | None = None) -> str:
    """A key as text; a compound key's parts in ``order`` (the key's own), since a JSON
    object stored in PostgreSQL (jsonb) does not keep the order its keys were written in."""
    if isinstance(key, dict):
        if len(key) == 1:
            return str(next(iter(key.values())))
        names = [k for k in order or () if k in key] + [k for k in key if k not in (order or ())]
        return ", ".join(f"{k}={key[k]}" for k in names)
    if isinstance(key, list | tuple):
        return ", ".join(str(k) for k in key)
    return "" if key is None else str(key)


def _mapping(stage: RunStage) -> dict:
    groups: dict[tuple[str, str], list[dict]] = {}
    for e in stage.examples:
        groups.setdefault((e["field"], e["reason"]), []).append(
            {"key": key_text(e["key"]), "value": e["value"]}
        )
    return {
        "groups": [{"field": f, "reason": r, "items": items} for (f, r), items in groups.items()]
    }


def _compare(stage: RunStage, parallel: bool) -> dict:
    f = stage.figures
    order = list(f.get("key") or [])
    counts = sorted(
        ((name, n) for name, n in (f.get("mismatch_counts") or {}).items() if n),
        key=lambda item: -item[1],
    )
    shares = kpis.column_mismatch_pct(f)
    return {
        "sample": kpis.sample_estimate(f),
        "shares": [(name, n, shares.get(name)) for name, n in counts],
        "left": "old output" if parallel else "source (transformed)",
        "right": "new output" if parallel else "target",
        "counts": counts,
        "examples": [
            {
                "key": key_text(e["key"], order),
                "field": e["field"],
                "source": e["source"],
                "target": e["target"],
            }
            for e in stage.examples
        ],
        "tolerances": [
            (name, text, (f.get("within_tolerance") or {}).get(name, 0))
            for name, text in (f.get("tolerances") or {}).items()
        ],
        "missing": [key_text(k, order) for k in f.get("missing_in_target", [])],
        "extra": [key_text(k, order) for k in f.get("extra_in_target", [])],
    }


def stage_views(run: ValidationRun) -> list[dict]:
    out = []
    for stage in run.stages.all():
        view: dict[str, Any] = {"stage": stage, "figures": stage.figures}
        if stage.name == "mapping":
            view.update(_mapping(stage))
        elif stage.name in ("reconciliation", "parallel"):
            view.update(_compare(stage, stage.name == "parallel"))
        out.append(view)
    return out
