"""Measured figures from validation runs, and matching them to criteria and monitors by metric.

A run's stages carry raw counts (sides reached, records, violations, keys compared,
differing keys); rates are derived from summed counts, so several runs aggregate correctly.
A metric that no run figure measures is reported as not measurable, with the reason.

Each figure is one function of the raw counts (None when the runs did not measure it), listed
once in FIGURES: reviews, alerts, criteria and the review report all read them from here.
"""

from collections.abc import Callable
from dataclasses import dataclass

from planner.models import Comparator, RunStage, ValidationRun


def error_rate_pct(raw: dict) -> float | None:
    if not raw.get("records"):
        return None
    return round(100 * raw.get("violations", 0) / raw["records"], 4)


def mismatch_rate_pct(raw: dict) -> float | None:
    if not raw.get("keys"):
        return None
    return round(100 * raw.get("differing", 0) / raw["keys"], 4)


def agreement_pct(raw: dict) -> float | None:
    mismatch = mismatch_rate_pct(raw)
    return None if mismatch is None else round(100 - mismatch, 4)


def records_synced(raw: dict) -> int | None:
    return raw.get("equal", 0) if raw.get("keys") else None


def connectivity_failures(raw: dict) -> int | None:
    return raw["sides"] - raw.get("sides_ok", 0) if raw.get("sides") else None


def availability_pct(raw: dict) -> float | None:
    if not raw.get("sides"):
        return None
    return round(100 * raw.get("sides_ok", 0) / raw["sides"], 3)


def unreachable_pct(raw: dict) -> float | None:
    available = availability_pct(raw)
    return None if available is None else round(100 - available, 3)


def latency_ms(raw: dict) -> float | None:
    return raw.get("latency_ms")


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    measure: Callable[[dict], float | None]


FIGURES: tuple[Figure, ...] = (
    Figure("connectivity_failures", "unreachable systems", "systems", connectivity_failures),
    Figure("availability_pct", "systems reachable", "%", availability_pct),
    Figure("unreachable_pct", "systems unreachable", "%", unreachable_pct),
    Figure("latency_ms", "connection latency", "ms", latency_ms),
    Figure("error_rate_pct", "error rate", "%", error_rate_pct),
    Figure("mismatch_rate_pct", "mismatch rate", "%", mismatch_rate_pct),
    Figure("agreement_pct", "agreement", "%", agreement_pct),
    Figure("records_synced", "records synced", "records", records_synced),
)
LABELS = {f.key: (f.label, f.unit) for f in FIGURES}


def raw_of_run(run: ValidationRun, stages: list[RunStage] | None = None) -> dict:
    """Raw counts of one finished run (keys absent when a stage did not produce them)."""
    stages = stages if stages is not None else list(run.stages.all())
    raw: dict = {}
    for stage in stages:
        f = stage.figures or {}
        if stage.name == "connectivity" and f.get("sides"):
            sides = f["sides"]
            raw["sides"] = len(sides)
            raw["sides_ok"] = sum(1 for s in sides if s.get("ok"))
            lat = [
                s["latency_ms"] for s in sides if s.get("ok") and s.get("latency_ms") is not None
            ]
            if lat:
                raw["latency_ms"] = max(lat)
        elif stage.name == "mapping" and f.get("records") is not None:
            raw["records"] = f["records"]
            raw["violations"] = f.get("violations") or 0
        elif stage.name in ("reconciliation", "parallel") and f.get("source_count") is not None:
            extra = f.get("extra_in_target_count") or 0
            raw["keys"] = (f.get("source_count") or 0) + extra
            raw["differing"] = (
                (f.get("mismatched_count") or 0) + (f.get("missing_in_target_count") or 0) + extra
            )
            raw["equal"] = f.get("equal_count") or 0
    return raw


def aggregate(raws: list[dict]) -> dict:
    total: dict = {}
    for raw in raws:
        for k, v in raw.items():
            if k == "latency_ms":
                total[k] = max(total.get(k, 0), v)
            else:
                total[k] = total.get(k, 0) + v
    return total


def derive(raw: dict) -> dict:
    """Every figure the raw counts measure, by its key."""
    values = ((f.key, f.measure(raw)) for f in FIGURES)
    return {key: value for key, value in values if value is not None}


@dataclass(frozen=True)
class Match:
    key: str | None
    factor: float = 1.0
    reason: str = ""


def normalise_unit(unit: str) -> str:
    return unit.strip().lower().rstrip(".")


def match_metric(metric: str, unit: str) -> Match:
    """Which measured figure a criterion or monitor (by its metric text and unit) refers to."""
    text, u = metric.lower(), normalise_unit(unit)
    pct = u in ("%", "percent", "pct", "")

    def rate(key: str) -> Match:
        if pct:
            return Match(key)
        return Match(None, reason=f"runs measure this as a percentage, not in '{unit}'")

    if "latency" in text or "response" in text or "delay" in text:
        if "sync" in text or "end-to-end" in text or u in ("minutes", "min", "hours", "h"):
            return Match(
                None,
                reason="runs measure a connection's response time, not how long a change takes"
                " to reach the target",
            )
        if u in ("ms", "milliseconds", ""):
            return Match("latency_ms")
        if u in ("s", "sec", "seconds"):
            return Match("latency_ms", 0.001)
        return Match(None, reason=f"unit '{unit}' is not a duration runs measure")
    if any(w in text for w in ("mismatch", "reconcil", "discrepan", "differ")):
        return rate("mismatch_rate_pct")
    if "agreement" in text or ("match" in text and "mismatch" not in text):
        return rate("agreement_pct")
    if any(w in text for w in ("error", "violation", "reject", "quality", "invalid")):
        return rate("error_rate_pct")
    if any(w in text for w in ("availab", "uptime", "reachab", "connectivity")):
        if u in ("failures", "systems", "count"):
            return Match("connectivity_failures")
        return rate("availability_pct")
    if any(w in text for w in ("records", "synced", "throughput", "volume")):
        if u in ("records", "rows", ""):
            return Match("records_synced")
        return Match(None, reason=f"runs count records, not '{unit}' (a rate needs a time base)")
    return Match(None, reason=f"no validation-run figure measures '{metric}'")


def value_for(match: Match, figures: dict) -> float | None:
    if match.key is None or match.key not in figures:
        return None
    return figures[match.key] * match.factor


def holds(value: float, comparator: str, target: float) -> bool:
    return Comparator(comparator).holds(value, target)
