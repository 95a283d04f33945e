"""Error-budget burn alerts of a criterion measured as a time series (planner.metrics.slo).

Each multi-window, multi-burn-rate rule is one alert (fingerprint `slo:<criterion>:<rule>`),
raised through the same alert machinery as monitor thresholds: one open alert per rule, and
only the most urgent firing rule opens one (a sudden total break fires all three rules),
notified once, updated while it keeps burning, resolved with a recovery message when it stops.
When the criterion has a step-6 monitor, the alert takes its route, reminders and escalation;
otherwise it goes to the unnamed channels, then the owners and editors.

Measurements are stored by `planner.metrics.points.record_point`; whatever records one calls
`record_and_evaluate` (or `evaluate_burn` after its own recording), so the rules are checked
after every point.
"""

import logging
import math
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from planner.metrics import slo
from planner.metrics.points import record_point
from planner.models import Alert, Monitor, SliPoint, SuccessCriterion
from planner.runs.alerts import notify

log = logging.getLogger(__name__)
UNIT = "x budget burn"


def fingerprint(criterion: SuccessCriterion, rule: slo.BurnRule) -> str:
    return f"slo:{criterion.pk}:{rule.name}"


def _monitor(criterion: SuccessCriterion) -> Monitor | None:
    """The criterion's own monitor, whose route and escalation its burn alerts follow."""
    return (
        Monitor.objects.filter(criterion=criterion, kind=Monitor.Kind.CRITERION)
        .order_by("pk")
        .first()
    )


def _burn(rate: float) -> str:
    # An objective of 100 % allows no error: any bad event burns without bound ("infx").
    return "∞" if math.isinf(rate) else f"{rate:g}x"


def _title(criterion: SuccessCriterion, state: slo.RuleState) -> str:
    return (
        f"'{criterion.metric}' burns its error budget {_burn(state.long_burn)} over "
        f"{slo.duration_text(state.long_window)} and {_burn(state.short_burn)} over "
        f"{slo.duration_text(state.short_window)} ({state.text})"
    )[:300]


def evaluate_burn(criterion: SuccessCriterion, now: datetime | None = None) -> dict:
    """Open, keep or resolve the alert of every burn-rate rule of `criterion` at `now`."""
    result = slo.compliance(criterion, end=now)
    now = now or timezone.now()
    opened, resolved = [], []
    monitor = None
    open_alerts = {
        a.fingerprint: a
        for a in Alert.objects.filter(
            fingerprint__startswith=f"slo:{criterion.pk}:", state=Alert.State.OPEN
        )
    }
    # Rules are listed most urgent first. Like an inhibition rule in an alert manager, a less
    # urgent rule opens nothing while a more urgent one fires: one breach, one new alert.
    urgent = next((state for state in result.rules if state.firing), None)
    for state in result.rules:
        fp = fingerprint(criterion, state.rule)
        current = open_alerts.get(fp)
        if state.firing and current is None and state is not urgent:
            continue
        if state.firing and current is not None:
            Alert.objects.filter(pk=current.pk).update(last_value=state.long_burn, last_seen_at=now)
        elif state.firing:
            monitor = monitor or _monitor(criterion)
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        project_id=criterion.project_id,
                        monitor=monitor,
                        connection_id=getattr(criterion, "connection_id", None),
                        fingerprint=fp,
                        severity=state.rule.severity,
                        title=_title(criterion, state),
                        value=state.long_burn,
                        unit=UNIT,
                        last_value=state.long_burn,
                        source=f"error budget of criterion '{criterion.metric}'"[:200],
                        opened_at=now,
                        last_seen_at=now,
                    )
            except IntegrityError:
                continue  # opened concurrently: one alert per rule
            opened.append(alert)
        elif current is not None:
            value = state.long_burn if state.long_burn is not None else 0.0
            done = Alert.objects.filter(pk=current.pk, state=Alert.State.OPEN).update(
                state=Alert.State.RESOLVED, resolved_at=now, last_value=value, last_seen_at=now
            )
            if done:
                current.refresh_from_db()
                resolved.append(current)
    for alert in opened:
        notify(alert, recovered=False)
    for alert in resolved:
        notify(alert, recovered=True)
    return {"opened": opened, "resolved": resolved, "compliance": result}


def record_and_evaluate(criterion: SuccessCriterion, **point) -> SliPoint:
    """Store one measurement (record_point's arguments) and check the burn-rate rules.

    Alerting never undoes the measurement: a failure is logged.
    """
    stored = record_point(criterion, **point)
    # The windows end at the point just stored (a measurement replayed late included).
    evaluate_after(criterion, point["at"])
    return stored


def evaluate_after(criterion: SuccessCriterion, at: datetime) -> None:
    """Check the burn-rate rules after a point at `at` was stored; a failure is logged only."""
    try:
        evaluate_burn(criterion, now=at)
    except Exception:
        log.exception("burn-rate alerts of criterion %s failed", criterion.pk)
