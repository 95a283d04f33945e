"""Measured figures from validation runs: the one definition of each.

A run's stages carry raw counts (sides reached, records, violations, rows compared, rows
equal); rates are derived from summed counts, so several runs aggregate correctly.

Each figure is one function of the raw counts (None when the runs did not measure it), listed
once in FIGURES under its `MetricKey`: the run page, reviews, alerts, go-live, the API and the
review report all read them from here. docs/figures.md lists the definitions.

Criteria and monitors name their figure (`metric_key`). `match_metric` is the old keyword
matching, kept only to place rows written before the catalogue existed (the data migration).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from planner.metrics import slo
from planner.models import Comparator, MetricKey, RunStage, ValidationRun


def share_pct(part: int, whole: int, places: int = 4) -> float:
    """``part`` of ``whole`` as a percentage rounded to ``places``, never rounded onto 0 or
    100 unless it is exactly that: one differing row in ten million is 99.9999 % agreement,
    not 100 %, so "agreement = 100" and "mismatch rate > 0" still see it."""
    pct = round(100 * part / whole, places)
    step = 10.0**-places
    if pct >= 100 and part < whole:
        return round(100 - step, places)
    if pct <= 0 < part:
        return step
    return pct


def error_rate_pct(raw: dict) -> float | None:
    if not raw.get("records"):
        return None
    return share_pct(raw.get("violations", 0), raw["records"])


def agreement_pct(raw: dict) -> float | None:
    """Rows equal on both sides / every row compared, null-key and duplicate-key rows included."""
    if not raw.get("keys"):
        return None
    return share_pct(raw.get("equal", 0), raw["keys"])


def mismatch_rate_pct(raw: dict) -> float | None:
    """Every row compared that is not equal on both sides, as a share: 100 - agreement."""
    agreement = agreement_pct(raw)
    return None if agreement is None else round(100 - agreement, 4)


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion ``hits / n`` (95 % for z = 1.96).

    Unlike the normal approximation it stays within [0, 1] and says something useful when no
    hit was seen: 0 differing keys of 300 still allows a rate up to about 1.3 %.
    """
    if n <= 0:
        return None
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def sample_estimate(f: dict) -> dict | None:
    """A sampled comparison's estimate of the whole table's mismatch rate (``f``: the
    reconciliation stage's figures): the keys compared, the rate among them (the one
    definition, mismatch_rate_pct) and its 95 % Wilson interval; None for a full run."""
    percent = (f.get("reading") or {}).get("sample_percent")
    keys = rows_compared(f)
    if not percent or not keys:
        return None
    raw = {"keys": keys, "equal": int(f.get("equal_count") or 0)}
    low, high = wilson_interval(keys - raw["equal"], keys)  # type: ignore[misc]
    return {
        "sample_percent": percent,
        "keys": keys,
        "mismatch_rate_pct": mismatch_rate_pct(raw),
        "low_pct": round(100 * low, 4),
        "high_pct": round(100 * high, 4),
        "confidence_pct": 95,
    }


def column_mismatch_pct(f: dict) -> dict[str, float]:
    """Per compared column: the share of matched keys whose value differs there."""
    matched = int(f.get("matched_count") or 0)
    if not matched:
        return {}
    counts = f.get("mismatch_counts") or {}
    return {name: share_pct(int(n), matched) for name, n in counts.items()}


def records_synced(raw: dict) -> int | None:
    if raw.get("sampled"):
        return None  # the rows equal in a sample, not in the tables
    return raw.get("equal", 0) if raw.get("keys") else None


def connectivity_failures(raw: dict) -> int | None:
    return raw["sides"] - raw.get("sides_ok", 0) if raw.get("sides") else None


def availability_pct(raw: dict) -> float | None:
    if not raw.get("sides"):
        return None
    return share_pct(raw.get("sides_ok", 0), raw["sides"], 3)


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
    Figure(
        MetricKey.CONNECTIVITY_FAILURES, "unreachable systems", "systems", connectivity_failures
    ),
    Figure(MetricKey.AVAILABILITY, "systems reachable", "%", availability_pct),
    Figure(MetricKey.UNREACHABLE, "systems unreachable", "%", unreachable_pct),
    Figure(MetricKey.LATENCY, "connection latency", "ms", latency_ms),
    Figure(MetricKey.ERROR_RATE, "error rate", "%", error_rate_pct),
    Figure(MetricKey.MISMATCH_RATE, "mismatch rate", "%", mismatch_rate_pct),
    Figure(MetricKey.AGREEMENT, "agreement", "%", agreement_pct),
    Figure(MetricKey.RECORDS_SYNCED, "records in sync", "records", records_synced),
)
LABELS = {str(f.key): (f.label, f.unit) for f in FIGURES}
BY_KEY = {str(f.key): f for f in FIGURES}


def unit_of(key: str) -> str:
    """The figure's own unit ('' for a metric measured outside Aethon)."""
    figure = BY_KEY.get(key)
    return figure.unit if figure else ""


def of_run(run: ValidationRun, stages: list[RunStage] | None = None) -> dict:
    """Every figure one run measured (what the run page, the API and alerts show)."""
    return derive(raw_of_run(run, stages))


def raw_of_run(run: ValidationRun, stages: list[RunStage] | None = None) -> dict:
    """Raw counts of one finished run (keys absent when a stage did not produce them).

    A run stopped after N differences read the keys in order only up to the stop: its
    records and rows compared describe that prefix, not the tables, so it measures no
    table figure (its page still shows what it read). A sampled run's shares estimate the
    table's (``sampled``), but its counts are the sample's: records in sync is not measured.
    """
    stages = stages if stages is not None else list(run.stages.all())
    raw: dict = {}
    readings = [(s.figures or {}).get("reading") or {} for s in stages]
    if any(r.get("stopped_early") for r in readings):
        stages = [s for s in stages if s.name == "connectivity"]
    if any(r.get("sample_percent") for r in readings):
        raw["sampled"] = 1
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
            raw["keys"] = rows_compared(f)
            raw["equal"] = f.get("equal_count") or 0
            raw["differing"] = raw["keys"] - raw["equal"]
    return raw


def rows_compared(f: dict) -> int:
    """Every row either side offered: matched, missing, extra, and the rows whose key was null or
    repeated (not compared, so never equal: they count against agreement)."""
    names = (
        "matched_count",
        "missing_in_target_count",
        "extra_in_target_count",
        "null_keys_source",
        "null_keys_target",
        "duplicate_rows_source",
        "duplicate_rows_target",
    )
    return sum(int(f.get(n) or 0) for n in names)


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


# ---------------------------------------------------------------------------------------------
# Criteria and monitors: each names its figure (`metric_key`).

MET, MISSED, NO_EVIDENCE = "met", "missed", "not_measurable"


@dataclass(frozen=True)
class Judgement:
    outcome: str  # MET, MISSED or NO_EVIDENCE
    value: float | None = None
    unit: str = ""
    reason: str = ""


def label_of(key: str) -> str:
    """The figure's name in a sentence (a key runs do not measure: its catalogue label)."""
    if key in LABELS:
        return LABELS[key][0]
    return MetricKey(key).label.split(" (")[0].lower() if key in MetricKey.values else key


def judge_criterion(
    criterion, figures: dict, compliance: "slo.Compliance | None" = None
) -> Judgement:
    """Whether a success criterion holds on `figures`, falling back to its manual evidence.

    A freshness criterion, or any criterion handed its `compliance` (planner.metrics.slo), is
    judged by the share of good events over its window or the review period, never by one run.
    Nothing measured is never "met": it is NO_EVIDENCE with the reason.
    """
    c = criterion
    if c.target is None:
        return Judgement(NO_EVIDENCE, reason="the criterion has no target")
    key = c.metric_key
    value, reason = None, ""
    if compliance is not None or slo.judged_by_compliance(c):
        judged = _by_compliance(compliance or slo.compliance(c, rules=False))
        if judged.outcome != NO_EVIDENCE or not c.has_manual_evidence:
            return judged
        reason = judged.reason
    elif not key:
        reason = c.metric_flag or "the criterion names no figure from the catalogue"
    elif key == MetricKey.EXTERNAL:
        reason = "measured outside Aethon, and no dated evidence is recorded"
    else:
        value = figures.get(key)
        if value is None:
            reason = f"no validation run measured the {label_of(key)}"
    if value is not None:
        unit = unit_of(key)
        ok = holds(value, c.comparator, float(c.target))
        return Judgement(MET if ok else MISSED, value, unit, "")
    if c.has_manual_evidence:
        value = float(c.evidence_value)
        ok = holds(value, c.comparator, float(c.target))
        note = f"manual evidence of {c.evidence_date:%d %b %Y}"
        if c.evidence_note:
            note += f": {c.evidence_note}"
        return Judgement(MET if ok else MISSED, value, c.unit or unit_of(key), note)
    return Judgement(NO_EVIDENCE, reason=reason)


def _by_compliance(compliance: "slo.Compliance | None") -> Judgement:
    if compliance is None or not compliance.total:
        return Judgement(NO_EVIDENCE, reason="nothing measured in the window yet")
    state, covered = compliance.state, f"{compliance.coverage_pct:g}% of the window measured"
    if state == slo.NO_OBJECTIVE:
        return Judgement(
            NO_EVIDENCE, reason="the criterion states no attainment % to judge compliance by"
        )
    value = compliance.attainment_pct
    objective = f"objective {compliance.objective_text}"
    if state == slo.NOT_ENOUGH_DATA:
        return Judgement(
            NO_EVIDENCE, value, "%", f"not enough data yet: {covered} (compliance {value:g}%)"
        )
    outcome = MET if state == slo.MET else MISSED
    return Judgement(outcome, value, "%", f"compliance over the window, {objective}; {covered}")


SHARES = (
    MetricKey.AGREEMENT,
    MetricKey.MISMATCH_RATE,
    MetricKey.ERROR_RATE,
    MetricKey.AVAILABILITY,
    MetricKey.UNREACHABLE,
)


def events(criterion, raw: dict) -> tuple[int, int] | None:
    """The good and total events one run's raw counts give a criterion's time series, or None
    when the run did not measure its figure. Shares without an attainment % count their rows
    (agreement: rows equal of rows compared); any other criterion counts the run as one event,
    good when the criterion held on it."""
    key = criterion.metric_key
    if criterion.attainment_pct is not None and key in SHARES:
        # "Mismatch rate <= 0.1 %, 99 % over 30 days" asks how often the target held: counting
        # rows would ignore the target, so each run is one event, good when it held.
        value = derive(raw).get(key)
        if value is None or criterion.target is None:
            return None
        return int(holds(value, criterion.comparator, float(criterion.target))), 1
    if key in (MetricKey.AGREEMENT, MetricKey.MISMATCH_RATE) and raw.get("keys"):
        return raw.get("equal", 0), raw["keys"]
    if key == MetricKey.ERROR_RATE and raw.get("records"):
        return raw["records"] - raw.get("violations", 0), raw["records"]
    if key in (MetricKey.AVAILABILITY, MetricKey.UNREACHABLE) and raw.get("sides"):
        return raw.get("sides_ok", 0), raw["sides"]
    if key in (MetricKey.LATENCY, MetricKey.RECORDS_SYNCED, MetricKey.CONNECTIVITY_FAILURES):
        value = derive(raw).get(key)
        if value is None or criterion.target is None:
            return None
        return int(holds(value, criterion.comparator, float(criterion.target))), 1
    return None


def breach(comparator: str) -> Comparator:
    """The comparison that holds exactly when a criterion with `comparator` is broken."""
    return Comparator(comparator).opposite


def default_monitor_metric(kind: str, comparator: str, unit: str, name: str) -> Match:
    """The figure a monitor of `kind` watches (how monitors were read before the catalogue)."""
    if kind == "connectivity":
        # "alert when < 99 %" watches availability; "alert when > 0" watches failures.
        if comparator in ("<", "<="):
            return Match(MetricKey.AVAILABILITY)
        if normalise_unit(unit) in ("%", "percent", "pct"):
            return Match(MetricKey.UNREACHABLE)
        return Match(MetricKey.CONNECTIVITY_FAILURES)
    if kind in ("error_rate", "data_quality"):
        return Match(MetricKey.ERROR_RATE)
    if kind == "reconciliation":
        return Match(MetricKey.MISMATCH_RATE)
    if kind == "throughput":
        return Match(MetricKey.RECORDS_SYNCED)
    return match_metric(name, unit)


def monitor_metric(monitor) -> str:
    """The figure key a monitor watches: its criterion's when it follows one."""
    if monitor.criterion_id and monitor.kind == "criterion":
        return monitor.criterion.metric_key
    return monitor.metric_key
