"""Success criteria in the API with their service level: compliance over the window, error
budget left and the burn rate of every alert rule, by the one definition in
planner.metrics.slo that the criterion page, reviews and alerts read."""

import math
from datetime import datetime

from ninja import Schema

from planner.metrics import figures as kpis
from planner.metrics import slo
from planner.models import SuccessCriterion

from .views import Error, _access, _one, api


class BurnRateOut(Schema):
    rule: str
    action: str
    severity: str
    threshold: float
    long_window_seconds: float
    short_window_seconds: float
    long_burn_rate: float | None = None
    short_burn_rate: float | None = None
    firing: bool


class CriterionOut(Schema):
    id: int
    metric: str
    text: str
    metric_key: str
    judgement: str
    state: str
    window_start: datetime
    window_end: datetime
    coverage_pct: float
    objective_pct: float | None = None
    good: int
    total: int
    compliance_pct: float | None = None
    error_budget: float | None = None
    error_budget_left: float | None = None
    error_budget_left_pct: float | None = None
    burn_rates: list[BurnRateOut]


def _finite(v: float | None) -> float | None:
    # An objective of 100 % allows no error: any error burns "infinitely", which JSON cannot
    # carry; the rule's `firing` still says so.
    return None if v is None or math.isinf(v) else v


def criterion_out(c: SuccessCriterion) -> dict:
    result = slo.compliance(c)
    judged = kpis.judge_criterion(c, {}, result) if slo.judged_by_compliance(c) else None
    return {
        "id": c.pk,
        "metric": c.metric,
        "text": str(c),
        "metric_key": c.metric_key,
        "judgement": judged.outcome if judged else "",
        "state": result.state,
        "window_start": result.start,
        "window_end": result.end,
        "coverage_pct": result.coverage_pct,
        "objective_pct": None if result.objective is None else round(100 * result.objective, 4),
        "good": result.good,
        "total": result.total,
        "compliance_pct": result.attainment_pct,
        "error_budget": result.budget,
        "error_budget_left": result.budget_left,
        "error_budget_left_pct": _finite(result.budget_left_pct),
        "burn_rates": [
            {
                "rule": r.rule.name,
                "action": r.rule.action,
                "severity": r.rule.severity,
                "threshold": r.rule.threshold,
                "long_window_seconds": r.long_window.total_seconds(),
                "short_window_seconds": r.short_window.total_seconds(),
                "long_burn_rate": _finite(r.long_burn),
                "short_burn_rate": _finite(r.short_burn),
                "firing": r.firing,
            }
            for r in result.rules
        ],
    }


@api.get(
    "/projects/{project_id}/criteria",
    response={200: list[CriterionOut], 403: Error, 404: Error},
    summary="Success criteria with compliance, error budget left and burn rates",
)
def list_criteria(request, project_id: int):
    project = _access(request, project_id)
    return [criterion_out(c) for c in SuccessCriterion.objects.filter(project=project)]


@api.get(
    "/projects/{project_id}/criteria/{criterion_id}",
    response={200: CriterionOut, 403: Error, 404: Error},
    summary="One success criterion's service level over its window",
)
def get_criterion(request, project_id: int, criterion_id: int):
    project = _access(request, project_id)
    c = _one(SuccessCriterion.objects.filter(project=project, pk=criterion_id), "criterion")
    return criterion_out(c)
