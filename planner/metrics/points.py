"""Recording a measurement of a criterion as one time-series point."""

from datetime import datetime

from planner.models import SliPoint, SuccessCriterion


def record_point(
    criterion: SuccessCriterion,
    *,
    at: datetime,
    good: int,
    total: int,
    lag_p50: float | None = None,
    lag_p95: float | None = None,
    lag_p99: float | None = None,
    lag_max: float | None = None,
    late_now: int | None = None,
) -> SliPoint:
    """Store one measurement; a second measurement at the same instant replaces the first."""
    if not 0 <= good <= total:
        raise ValueError(f"good ({good}) must lie between 0 and total ({total})")
    point, _ = SliPoint.objects.update_or_create(
        criterion=criterion,
        resolution=SliPoint.Resolution.RAW,
        at=at,
        defaults={
            "good": good,
            "total": total,
            "lag_p50": lag_p50,
            "lag_p95": lag_p95,
            "lag_p99": lag_p99,
            "lag_max": lag_max,
            "late_now": late_now,
            "points": 1,
        },
    )
    return point
