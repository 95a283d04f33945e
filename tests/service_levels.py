"""Criteria and time series for service-level tests: a freshness criterion and runs of points."""

from datetime import timedelta
from decimal import Decimal

from planner.models import MetricKey, SliPoint
from tests.factories import CriterionFactory

MINUTE = timedelta(minutes=1)


def fresh(**kwargs):
    """'Propagation lag <= 5 minutes, 99.9 % over 30 days'."""
    defaults = {
        "metric": "contacts reach marketing",
        "metric_key": MetricKey.FRESHNESS,
        "target": Decimal("5"),
        "unit": "minutes",
        "attainment_pct": Decimal("99.9"),
        "window_value": 30,
        "window_unit": "days",
    }
    return CriterionFactory(**{**defaults, **kwargs})


def series(criterion, start, count, step=MINUTE, good=100, total=100, **lags):
    """`count` raw points from `start`, `step` apart, each good/total events."""
    SliPoint.objects.bulk_create(
        SliPoint(criterion=criterion, at=start + i * step, good=good, total=total, **lags)
        for i in range(count)
    )
