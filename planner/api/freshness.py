"""Freshness in the API: each connection's change-time fields, a propagation-lag criterion's
latest measurement, and "Measure now" — the same records and the same function as the pages."""

from datetime import datetime

from ninja import Schema, Status
from ninja.errors import HttpError

from planner.metrics import freshness as lag
from planner.models import FreshnessSettings, FreshnessState, SliPoint, SuccessCriterion

from .views import Error, _access, _one, api


class FreshnessSettingsOut(Schema):
    connection_id: int
    connection: str
    basis: str
    source_time_field: str
    target_time_field: str
    skew_seconds: int
    overlap_seconds: int


class PointOut(Schema):
    at: datetime
    good: int
    total: int
    lag_p50: float | None
    lag_p95: float | None
    lag_p99: float | None
    lag_max: float | None
    late_now: int | None


class CriterionFreshnessOut(Schema):
    criterion_id: int
    connection_id: int | None
    measurable: bool
    problem: str
    every_minutes: int
    measured_at: datetime | None
    counted_until: datetime | None
    pending: int | None
    unmeasured: int | None
    share_within_pct: float | None
    seconds: float | None
    late_examples: list[dict]
    last_error: str
    error_at: datetime | None
    latest: PointOut | None


class Queued(Schema):
    detail: str


@api.get(
    "/projects/{project_id}/freshness-settings",
    response={200: list[FreshnessSettingsOut], 403: Error, 404: Error},
    summary="Per connection: the fields that tell when a record changed, skew and overlap",
)
def freshness_settings(request, project_id: int):
    project = _access(request, project_id)
    rows = FreshnessSettings.objects.filter(project=project).select_related(
        "connection__source", "connection__target"
    )
    return [
        {
            "connection_id": f.connection_id,
            "connection": str(f.connection),
            "basis": f.basis,
            "source_time_field": f.source_time_field,
            "target_time_field": f.target_time_field,
            "skew_seconds": f.skew_seconds,
            "overlap_seconds": f.overlap_seconds,
        }
        for f in rows
    ]


def _criterion(project, criterion_id: int) -> SuccessCriterion:
    return _one(SuccessCriterion.objects.filter(project=project, pk=criterion_id), "criterion")


@api.get(
    "/projects/{project_id}/criteria/{criterion_id}/freshness",
    response={200: CriterionFreshnessOut, 403: Error, 404: Error},
    summary="A propagation-lag criterion: its latest measurement, late records, last error",
)
def criterion_freshness(request, project_id: int, criterion_id: int):
    # The measuring module (connectors, polars) loads when a criterion's freshness is asked.
    from planner.runs import freshness

    criterion = _criterion(_access(request, project_id), criterion_id)
    state = FreshnessState.objects.filter(criterion=criterion).first()
    latest = freshness.latest_point(criterion)
    problem = freshness.problem(criterion)
    figures = state.figures if state else {}
    return {
        "criterion_id": criterion.pk,
        "connection_id": criterion.freshness_connection_id,
        "measurable": not problem,
        "problem": problem,
        "every_minutes": lag.every_minutes(criterion),
        "measured_at": state.measured_at if state else None,
        "counted_until": state.counted_until if state else None,
        "pending": state.pending if state else None,
        "unmeasured": state.unmeasured if state else None,
        "share_within_pct": figures.get("share_within_pct"),
        "seconds": figures.get("seconds"),
        "late_examples": state.late_examples if state else [],
        "last_error": state.last_error if state else "",
        "error_at": state.error_at if state else None,
        "latest": _point(latest),
    }


def _point(p: SliPoint | None) -> dict | None:
    if p is None:
        return None
    return {k: getattr(p, k) for k in PointOut.model_fields}


@api.post(
    "/projects/{project_id}/criteria/{criterion_id}/freshness/measure",
    response={202: Queued, 400: Error, 403: Error, 404: Error},
    summary="Measure a propagation-lag criterion now (a worker reads both systems)",
)
def measure_now(request, project_id: int, criterion_id: int):
    from planner.runs import freshness

    criterion = _criterion(_access(request, project_id, "edit"), criterion_id)
    try:
        detail = freshness.request_measurement(criterion)
    except freshness.MeasurementFailed as exc:
        raise HttpError(400, exc.message) from None
    return Status(202, {"detail": detail})
