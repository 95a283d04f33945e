"""Thirty days of generated one-minute freshness measurements for the demo's latency criteria,
so a newcomer sees compliance, an error-budget burn, alerts and plots right after `make run`.

Deterministic (a seeded generator): a quiet baseline, a few short incidents, one long one that
spends a budget, and an incident still going on now, which opens a burn-rate alert. Points
older than the roll-up age are written as the hourly roll-ups `slo.roll_up` would make, so the
demo loads fast (a few thousand rows, one bulk insert).
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from planner.metrics import slo
from planner.models import SliPoint, SuccessCriterion
from planner.runs.slo_alerts import evaluate_burn

DAYS = 30


@dataclass(frozen=True)
class Incident:
    ago: timedelta  # when it started, before now
    minutes: int
    bad_share: float  # share of the events late
    lag_seconds: float  # p99 during the incident


@dataclass(frozen=True)
class Profile:
    events_per_minute: int
    lag_p50: float  # seconds, quiet times
    incidents: tuple[Incident, ...]


PROFILES = {
    # 'within 5 minutes, 99.9 % over 30 days': a two-hour outage 12 days ago spends the budget,
    # and a slowdown is going on right now (a page on the fast rule).
    "status sync latency": Profile(
        3,
        25.0,
        (
            Incident(timedelta(days=25, hours=3), 20, 0.3, 420.0),
            Incident(timedelta(days=12, hours=6), 120, 0.6, 1500.0),
            Incident(timedelta(days=4, hours=9), 15, 0.2, 380.0),
            Incident(timedelta(minutes=40), 41, 0.5, 900.0),
        ),
    ),
    # 'within 2 minutes, 99.99 %': two brief incidents, the budget mostly left.
    "payment status latency": Profile(
        20,
        12.0,
        (
            Incident(timedelta(days=18, hours=2), 10, 0.1, 200.0),
            Incident(timedelta(days=6, hours=14), 6, 0.1, 150.0),
        ),
    ),
}


def _minutes(profile: Profile, now: datetime, seed: str):
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    start = now - timedelta(days=DAYS)
    marks = {}
    for inc in profile.incidents:
        first = int((now - inc.ago - start).total_seconds() // 60)
        for m in range(first, first + inc.minutes):
            marks[m] = inc
    for m in range(1, DAYS * 24 * 60 + 1):
        at = start + timedelta(minutes=m)
        total = profile.events_per_minute + rng.randint(0, profile.events_per_minute)
        inc = marks.get(m)
        if inc is None:
            p50 = profile.lag_p50 * rng.uniform(0.7, 1.3)
            yield at, total, total, p50, p50 * 2.5, p50 * 4, p50 * 6, rng.choice((0, 0, 0, 1))
        else:
            bad = max(1, round(total * inc.bad_share))
            lag = inc.lag_seconds * rng.uniform(0.8, 1.2)
            yield at, total - bad, total, lag / 3, lag * 0.8, lag, lag * 1.5, bad * 4


def generate(criterion: SuccessCriterion, profile: Profile, now: datetime) -> list[SliPoint]:
    """Raw points for the last days, hourly roll-ups before them (summed as roll_up does)."""
    cutoff = (now - slo.rollup_after()).replace(minute=0, second=0, microsecond=0)
    points: list[SliPoint] = []
    hours: dict[datetime, SliPoint] = {}
    for at, good, total, p50, p95, p99, mx, late in _minutes(profile, now, criterion.metric):
        if at >= cutoff:
            points.append(
                SliPoint(
                    criterion=criterion, at=at, good=good, total=total, lag_p50=p50,
                    lag_p95=p95, lag_p99=p99, lag_max=mx, late_now=late,
                )
            )  # fmt: skip
            continue
        hour = at.replace(minute=0)
        h = hours.get(hour)
        if h is None:
            hours[hour] = SliPoint(
                criterion=criterion, at=hour, resolution=SliPoint.Resolution.HOUR, good=good,
                total=total, lag_p50=p50, lag_p95=p95, lag_p99=p99, lag_max=mx, late_now=late,
                points=1,
            )  # fmt: skip
            continue
        h.good, h.total, h.points = h.good + good, h.total + total, h.points + 1
        h.lag_p50, h.lag_p95 = max(h.lag_p50, p50), max(h.lag_p95, p95)
        h.lag_p99, h.lag_max, h.late_now = (
            max(h.lag_p99, p99),
            max(h.lag_max, mx),
            max(h.late_now, late),
        )
    return [*hours.values(), *points]


def load(criteria: list[SuccessCriterion], now: datetime | None = None) -> int:
    """Measurements for every demo criterion that has a profile; then the burn-rate rules."""
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    rows = []
    measured = [c for c in criteria if c.metric in PROFILES]
    for c in measured:
        rows += generate(c, PROFILES[c.metric], now)
    SliPoint.objects.bulk_create(rows, batch_size=5000)
    for c in measured:
        evaluate_burn(c, now=now)
    return len(rows)
