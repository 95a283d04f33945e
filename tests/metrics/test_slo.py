"""Compliance, error budget, burn rates and roll-ups of a criterion's time series, on series whose
figures are worked out by hand."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from planner.metrics import figures as kpis
from planner.metrics import slo
from planner.metrics.points import record_point
from planner.models import Alert, MetricKey, Monitor, SliPoint
from planner.runs import alerts, slo_alerts
from tests.factories import CriterionFactory
from tests.service_levels import MINUTE, fresh, series

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Compliance and the error budget


def test_compliance_and_budget_are_exact_on_a_hand_computed_series(db):
    c = fresh()
    # 30 days, one point every 10 minutes ending at NOW: 4,320 points of 100 events.
    series(c, NOW - timedelta(days=30) + 10 * MINUTE, 4320, step=10 * MINUTE)
    # Ten of them had 10 late records each: 100 bad events of 432,000.
    bad = SliPoint.objects.filter(criterion=c).order_by("at")[100:110]
    SliPoint.objects.filter(pk__in=[p.pk for p in bad]).update(good=90)
    result = slo.compliance(c, end=NOW)
    assert (result.good, result.total, result.bad) == (431_900, 432_000, 100)
    assert result.attainment_pct == round(100 * 431_900 / 432_000, 4) == 99.9769
    assert result.budget == pytest.approx(432.0)  # 0.1 % of 432,000
    assert result.budget_left == pytest.approx(332.0)
    assert result.budget_left_pct == pytest.approx(76.85)
    assert result.coverage_pct == 100.0
    assert result.state == slo.MET
    judged = kpis.judge_criterion(c, {}, slo.compliance(c, end=NOW))
    assert judged.outcome == kpis.MET and judged.value == 99.9769 and judged.unit == "%"


def test_window_edges_exclude_the_point_at_its_start_and_include_the_one_at_its_end(db):
    c = fresh(window_value=1)
    record_point(c, at=NOW - timedelta(days=1), good=0, total=10)  # just outside
    record_point(c, at=NOW, good=10, total=10)
    result = slo.compliance(c, end=NOW)
    assert (result.good, result.total) == (10, 10)


def test_a_missed_objective_and_an_overspent_budget(db):
    c = fresh()
    series(c, NOW - timedelta(days=30) + MINUTE, 30, step=timedelta(days=1), good=99, total=100)
    result = slo.compliance(c, end=NOW)
    # 1 % bad against 0.1 % allowed: the budget is spent ten times over.
    assert result.attainment_pct == 99.0 and result.state == slo.MISSED
    assert result.budget_left_pct == pytest.approx(-900.0)
    assert kpis.judge_criterion(c, {}, slo.compliance(c, end=NOW)).outcome == kpis.MISSED


def test_nothing_measured_is_not_enough_data_never_met(db):
    c = fresh()
    result = slo.compliance(c, end=NOW)
    assert result.state == slo.NOT_ENOUGH_DATA and result.state_label == "Not enough data yet"
    assert result.attainment is None and result.budget is None and result.coverage_pct == 0
    judged = kpis.judge_criterion(c, {"agreement_pct": 100})
    assert judged.outcome == kpis.NO_EVIDENCE and "nothing measured" in judged.reason


def test_two_good_days_of_thirty_are_not_enough_data_and_say_how_much_is_covered(db):
    c = fresh()
    series(c, NOW - timedelta(days=2), 2 * 24, step=timedelta(hours=1))
    result = slo.compliance(c, end=NOW)
    assert result.attainment_pct == 100.0
    assert result.coverage_pct == pytest.approx(6.7)
    assert result.state == slo.NOT_ENOUGH_DATA
    judged = kpis.judge_criterion(c, {}, slo.compliance(c, end=NOW))
    assert judged.outcome == kpis.NO_EVIDENCE and "6.7% of the window measured" in judged.reason


def test_a_criterion_without_an_attainment_uses_a_share_target_or_states_none(db):
    agreement = CriterionFactory(
        metric="records agree", metric_key=MetricKey.AGREEMENT, comparator=">=", target=99.5,
        unit="%", attainment_pct=None,
    )  # fmt: skip
    assert slo.objective_of(agreement) == pytest.approx(0.995)
    errors = CriterionFactory(
        metric="errors", metric_key=MetricKey.ERROR_RATE, comparator="<=", target=2, unit="%",
        attainment_pct=None,
    )  # fmt: skip
    assert slo.objective_of(errors) == pytest.approx(0.98)
    latency = CriterionFactory(metric_key=MetricKey.LATENCY, attainment_pct=None, unit="ms")
    record_point(latency, at=NOW, good=1, total=1)
    assert slo.compliance(latency, end=NOW).state == slo.NO_OBJECTIVE


@pytest.mark.parametrize(
    ("key", "comparator", "target", "objective"),
    [
        # "Every row agrees" and "no row differs" allow no bad event, whichever way stated.
        (MetricKey.AGREEMENT, "=", 100, 1.0),
        (MetricKey.AVAILABILITY, "=", 100, 1.0),
        (MetricKey.MISMATCH_RATE, "=", 0, 1.0),
        (MetricKey.ERROR_RATE, "=", 0, 1.0),
        # Any other equality, an inequality or a bound the wrong way states no share.
        (MetricKey.AGREEMENT, "=", 99, None),
        (MetricKey.MISMATCH_RATE, "=", 1, None),
        (MetricKey.AGREEMENT, "!=", 100, None),
        (MetricKey.AGREEMENT, "<=", 100, None),
        (MetricKey.MISMATCH_RATE, ">=", 0, None),
    ],
)
def test_every_comparator_of_a_share_criterion_gives_its_objective(
    db, key, comparator, target, objective
):
    c = CriterionFactory(
        metric="x", metric_key=key, comparator=comparator, target=target, unit="%",
        attainment_pct=None,
    )  # fmt: skip
    assert slo.objective_of(c) == objective
    record_point(c, at=NOW, good=999, total=1000)
    expected = slo.NO_OBJECTIVE if objective is None else slo.MISSED
    assert slo.compliance(c, end=NOW).state == expected


@pytest.mark.parametrize(
    ("key", "comparator", "target", "good", "met"),
    [
        (MetricKey.AGREEMENT, ">=", 99, 99, True),
        (MetricKey.AGREEMENT, ">", 99, 99, False),
        (MetricKey.AGREEMENT, ">", 99, 100, True),
        (MetricKey.MISMATCH_RATE, "<=", 1, 99, True),
        (MetricKey.MISMATCH_RATE, "<", 1, 99, False),
        (MetricKey.MISMATCH_RATE, "<", 1, 100, True),
    ],
)
def test_a_share_target_exactly_reached_meets_only_a_non_strict_criterion(
    db, key, comparator, target, good, met
):
    """'agreement > 99 %' is not met by exactly 99 %: compliance judges as one run's figure
    does (Comparator.holds), in reviews, the go-live gate and the API alike."""
    c = CriterionFactory(
        metric="records agree", metric_key=key, comparator=comparator, target=target,
        unit="%", attainment_pct=None,
    )  # fmt: skip
    series(c, NOW - timedelta(days=30) + MINUTE, 30, step=timedelta(days=1), good=good, total=100)
    result = slo.compliance(c, end=NOW)
    assert result.state == (slo.MET if met else slo.MISSED)
    bulk = slo.compliances([(c, NOW - timedelta(days=30))], NOW)[c.pk]
    assert bulk.state == result.state
    share = 100 * good / 100 if key == MetricKey.AGREEMENT else 100 - good
    assert kpis.holds(share, comparator, target) == met


def test_a_freshness_criterion_no_longer_breaks_judging_and_falls_back_to_evidence(db):
    c = fresh(evidence_value=Decimal("3"), evidence_date=NOW.date(), evidence_note="dashboard")
    judged = kpis.judge_criterion(c, {}, slo.compliance(c, end=NOW))
    assert judged.outcome == kpis.MET and "manual evidence" in judged.reason
    assert kpis.label_of(MetricKey.FRESHNESS) == "propagation lag"


# ---------------------------------------------------------------------------------------------
# Roll-ups


def test_roll_up_keeps_every_figure_and_is_idempotent(db, settings):
    settings.AETHON_SLO_ROLLUP_AFTER_DAYS = 3
    c = fresh(window_value=7)
    start = NOW - timedelta(days=7) + MINUTE
    series(c, start, 7 * 24 * 60, good=100, total=100, lag_p50=10.0, lag_p95=40.0, lag_p99=60.0)
    # Two bad minutes, the last two of the hour that ends at the roll-up boundary (3 days ago,
    # on the hour): a point stamped on the hour belongs to the hour it ends.
    cutoff = NOW - timedelta(days=3)
    SliPoint.objects.filter(criterion=c, at=cutoff - MINUTE).update(good=50, lag_p99=600.0)
    SliPoint.objects.filter(criterion=c, at=cutoff).update(good=70)
    before = slo.compliance(c, end=NOW)
    assert (before.good, before.total) == (1_008_000 - 80, 1_008_000)

    folded = slo.roll_up(now=NOW)
    raw_left = SliPoint.objects.filter(criterion=c, resolution="raw")
    hours = SliPoint.objects.filter(criterion=c, resolution="hour")
    assert folded == 4 * 24 * 60  # every raw point up to the cutoff
    assert raw_left.count() == 3 * 24 * 60
    assert raw_left.order_by("at").first().at == cutoff + MINUTE
    assert hours.count() == 4 * 24
    worst = hours.get(at=cutoff - timedelta(hours=1))
    assert (worst.good, worst.total, worst.points, worst.lag_p99) == (5920, 6000, 60, 600.0)
    after = slo.compliance(c, end=NOW)
    assert (after.good, after.total) == (before.good, before.total)

    assert slo.roll_up(now=NOW) == 0  # again: nothing left to fold, nothing counted twice
    assert slo.compliance(c, end=NOW).total == before.total

    # A late measurement for an hour already rolled up is merged into it next time.
    record_point(c, at=cutoff - timedelta(minutes=30, seconds=30), good=0, total=5)
    assert slo.roll_up(now=NOW) == 1
    worst.refresh_from_db()
    assert (worst.good, worst.total, worst.points) == (5920, 6005, 61)


def test_rolling_up_changes_no_figure_whatever_the_window_edges(db, settings):
    settings.AETHON_SLO_ROLLUP_AFTER_DAYS = 3
    c = fresh(window_value=7)
    # Eight days of one-minute points ending at NOW, on the minute, with uneven good counts.
    SliPoint.objects.bulk_create(
        SliPoint(criterion=c, at=NOW - i * MINUTE, good=i % 7, total=10) for i in range(8 * 24 * 60)
    )
    ends = [NOW, NOW - timedelta(days=4, minutes=17), NOW - timedelta(minutes=23)]
    reviews = [(NOW - timedelta(days=6, minutes=41), NOW - timedelta(days=3, minutes=5))]

    def figures():
        out = []
        for end in ends:
            r = slo.compliance(c, end=end)
            out.append((r.good, r.total, [(s.long_burn, s.short_burn) for s in r.rules]))
        for start, end in reviews:
            r = slo.compliance(c, end=end, start=start, rules=False)
            out.append((r.good, r.total))
        return out

    before = figures()
    # A window ending on the hour starts on the hour: the point at its start is outside.
    assert before[0][1] == 7 * 24 * 60 * 10
    assert slo.roll_up(now=NOW) > 0
    assert SliPoint.objects.filter(criterion=c, resolution="hour").exists()
    assert figures() == before


def test_the_night_clocks_go_back_rolls_up_two_hours_and_changes_no_figure(db, settings):
    settings.TIME_ZONE = "Europe/Berlin"  # 03:00 CEST becomes 02:00 CET at 01:00 UTC
    c = fresh(window_value=1)
    night = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    SliPoint.objects.bulk_create(
        SliPoint(criterion=c, at=night + i * MINUTE, good=i % 5, total=10) for i in range(1, 361)
    )
    edges = [night + timedelta(minutes=m) for m in (70, 130, 150, 190, 250)]

    def figures():
        return [
            slo.compliance(c, end=e + timedelta(days=1), start=e, rules=False).total for e in edges
        ] + [slo.compliance(c, end=e, start=night, rules=False).total for e in edges]

    before = figures()
    # The window from 01:10 UTC (02:10 CET) counts from 01:00 UTC: 01:01 to 04:00, 180 points.
    assert before[3] == 1800
    slo.roll_up(now=night + timedelta(days=10))
    hours = SliPoint.objects.filter(criterion=c, resolution="hour").order_by("at")
    assert [(p.at.hour, p.points) for p in hours] == [(h, 60) for h in (22, 23, 0, 1, 2, 3)]
    assert figures() == before


def test_buckets_sum_raw_and_rolled_up_points_per_hour(db):
    c = fresh(window_value=7)
    series(c, NOW - timedelta(days=5) + MINUTE, 5 * 24 * 60, lag_p95=30.0)
    slo.roll_up(now=NOW)
    seen = slo.history(c, NOW)
    assert len(seen.hourly) == 5 * 24
    assert {b.total for b in seen.hourly} == {6000} and {b.lag_p95 for b in seen.hourly} == {30.0}
    assert len(seen.samples) == 61 and seen.samples[-1].compliance_pct == 100.0


def inside(p, start, end) -> bool:
    """The rule of a window (start, end] stated in words: a roll-up counts when its hour ends
    after start and by end; a raw point when it lies after start and by end, where an edge old
    enough to be rolled up (its hour before the roll-up horizon) is taken to its hour."""
    if p.resolution == "hour":
        return start < p.at + slo.HOUR <= end
    horizon = slo.rolled_horizon()

    def edge(t):
        hour = t.replace(minute=0, second=0, microsecond=0)
        return hour if hour < horizon else t

    return edge(start) < p.at <= edge(end)


def reference(points, start, end):
    """Good and total of the window (start, end], point by point (`inside`)."""
    kept = [p for p in points if inside(p, start, end)]
    return sum(p.good for p in kept), sum(p.total for p in kept)


def uneven(c, end):
    """Four days of one-minute points ending near `end` with a bad minute every 7 and a worse
    one every 97, then the older half rolled up into hours."""
    SliPoint.objects.bulk_create(
        SliPoint(
            criterion=c, at=end - i * MINUTE, good=100 - (i % 7 == 0) - 20 * (i % 97 == 0),
            total=100, lag_p95=float(i % 50), late_now=i % 3,
        )
        for i in range(4 * 24 * 60)
    )  # fmt: skip
    slo.roll_up(now=end + timedelta(days=1))  # folds what is older than two days
    assert SliPoint.objects.filter(criterion=c, resolution="hour").count() > 40


def test_rolling_compliance_at_every_step_equals_the_figure_worked_out_point_by_point(db):
    c = fresh(window_value=2)  # steps of an hour over a two-day window
    end = NOW + timedelta(minutes=17, seconds=29)  # edges fall inside hours, not on them
    uneven(c, end - timedelta(minutes=3))
    points = list(SliPoint.objects.filter(criterion=c))
    seen = slo.history(c, end)
    window = timedelta(days=2)
    assert seen.step == slo.HOUR and len(seen.samples) == 49
    for sample in seen.samples:
        good, total = reference(points, sample.at - window, sample.at)
        assert total, sample.at
        assert sample.compliance_pct == round(100 * good / total, 4), sample.at
        budget = 0.001 * total
        assert sample.budget_left_pct == round(100 * (budget - (total - good)) / budget, 2)
    now = slo.compliance(c, end=end)
    assert seen.samples[-1].compliance_pct == now.attainment_pct
    assert (seen.compliance.good, seen.compliance.total) == (now.good, now.total)
    assert [r.long_burn for r in seen.compliance.rules] == [r.long_burn for r in now.rules]


def test_hourly_buckets_equal_the_points_summed_per_hour_in_python(db):
    c = fresh(window_value=2)
    end = NOW + timedelta(minutes=17, seconds=29)
    uneven(c, end - timedelta(minutes=3))
    points = list(SliPoint.objects.filter(criterion=c))
    expected = {}
    for p in points:
        if not inside(p, end - timedelta(days=4), end):
            continue
        # A roll-up is plotted in its own hour; a raw point in the hour it ends, (h, h + 1 h].
        moment = p.at if p.resolution == "hour" else p.at - timedelta(microseconds=1)
        hour = moment.replace(minute=0, second=0, microsecond=0)
        g, t, lag, late = expected.get(hour, (0, 0, None, None))
        expected[hour] = (
            g + p.good,
            t + p.total,
            max(lag or 0, p.lag_p95),
            max(late or 0, p.late_now),
        )
    seen = slo.history(c, end).hourly
    assert [b.at for b in seen] == sorted(expected)
    assert {b.at: (b.good, b.total, b.lag_p95, b.late_now) for b in seen} == expected


def test_burn_windows_and_the_compliance_window_end_exactly_on_their_edges(db):
    c = fresh()
    # Recent edges are exact to the microsecond (older ones go by the hour, like roll-ups).
    end = timezone.now().replace(microsecond=0)
    # On each edge of the fast rule's windows (1 h and 5 min): the point at the start is out.
    for at, good in ((end - slo.HOUR, 0), (end - 5 * MINUTE, 0), (end, 100)):
        record_point(c, at=at, good=good, total=100)
    fast = next(r for r in slo.compliance(c, end=end).rules if r.rule.name == "fast")
    # 5 min: only the point at `end`; 1 h: also the one 5 minutes before.
    assert fast.short_burn == 0.0 and fast.long_burn == pytest.approx(500.0)
    # A roll-up whose hour ends on the window's start is out; one ending a second later is in.
    start = end - timedelta(days=30)
    SliPoint.objects.create(
        criterion=c, resolution="hour", at=start - slo.HOUR, good=0, total=1000, points=60
    )
    assert slo.compliance(c, end=end).total == 300
    SliPoint.objects.create(
        criterion=c, resolution="hour", at=start - slo.HOUR + timedelta(seconds=1), good=0,
        total=7, points=60,
    )  # fmt: skip
    assert slo.compliance(c, end=end).total == 307
    # A review period's start and end follow the same rule.
    over = slo.compliance(c, end=end - 5 * MINUTE, start=end - slo.HOUR, rules=False)
    assert (over.good, over.total) == (0, 100)


# ---------------------------------------------------------------------------------------------
# Burn-rate alerts (SRE workbook: 1 h & 5 min > 14.4, 6 h & 30 min > 6, 3 d & 6 h > 1)


def steady_then(c, minutes_bad, bad_good, days=4, events=1000):
    """`days` of clean one-minute points ending at NOW, the last `minutes_bad` of them with
    `bad_good` good events of `events`."""
    n = days * 24 * 60
    series(c, NOW - timedelta(minutes=n - 1), n - minutes_bad, good=events, total=events)
    series(c, NOW - timedelta(minutes=minutes_bad - 1), minutes_bad, good=bad_good, total=events)


def firing(c, now=NOW):
    return {r.rule.name for r in slo.compliance(c, end=now).firing}


def test_a_sudden_break_pages_on_the_fast_rule_only(db, mailoutbox):
    c = fresh()
    steady_then(c, 60, 980)  # 2 % bad for the last hour: burn 20 over 1 h and 5 min
    result = slo.compliance(c, end=NOW)
    fast = next(r for r in result.rules if r.rule.name == "fast")
    assert (fast.long_burn, fast.short_burn) == (20.0, 20.0)
    medium = next(r for r in result.rules if r.rule.name == "medium")
    assert medium.long_burn == pytest.approx(20 / 6, abs=1e-3) and not medium.firing
    outcome = slo_alerts.evaluate_burn(c, now=NOW)
    [alert] = outcome["opened"]
    assert alert.fingerprint == f"slo:{c.pk}:fast" and alert.severity == "critical"
    assert "20x over 1 h" in alert.title and "exceed 14.4" in alert.title
    assert alert.project_id == c.project_id and alert.value == 20.0
    assert mailoutbox and "burns its error budget" in mailoutbox[0].subject
    # Still burning: the same alert, not a second one.
    assert slo_alerts.evaluate_burn(c, now=NOW)["opened"] == []
    assert Alert.objects.filter(state="open").count() == 1


def test_a_total_break_fires_every_rule_but_opens_only_the_most_urgent_alert(db):
    c = fresh()
    steady_then(c, 3 * 24 * 60, 0)  # nothing good for three days: every rule fires
    assert firing(c) == {"fast", "medium", "slow"}
    [alert] = slo_alerts.evaluate_burn(c, now=NOW)["opened"]
    assert alert.fingerprint.endswith(":fast")
    assert Alert.objects.filter(state="open").count() == 1


def test_a_steady_burn_pages_on_the_medium_rule(db):
    c = fresh()
    steady_then(c, 6 * 60, 993)  # 0.7 % bad for six hours: burn 7
    assert firing(c) == {"medium"}


def test_a_slow_leak_opens_a_ticket_on_the_slow_rule(db):
    c = fresh()
    steady_then(c, 3 * 24 * 60, 9985, events=10_000)  # 0.15 %: burn 1.5 over 3 days
    assert firing(c) == {"slow"}
    [alert] = slo_alerts.evaluate_burn(c, now=NOW)["opened"]
    assert alert.severity == "warning" and alert.fingerprint.endswith(":slow")


def test_no_alert_below_every_threshold_nor_without_data(db):
    c = fresh()
    assert firing(c) == set()
    assert slo_alerts.evaluate_burn(c, now=NOW)["opened"] == []
    steady_then(c, 3 * 24 * 60, 9995, events=10_000)  # 0.05 %: burn 0.5
    assert firing(c) == set()
    assert slo_alerts.evaluate_burn(c, now=NOW)["opened"] == []


def test_a_fast_burn_that_stops_resolves_its_alert(db, mailoutbox):
    c = fresh()
    steady_then(c, 60, 980)
    [alert] = slo_alerts.evaluate_burn(c, now=NOW)["opened"]
    # Ten clean minutes later the 5-minute window is clean: the page stops.
    series(c, NOW + MINUTE, 10, good=1000, total=1000)
    later = NOW + 10 * MINUTE
    assert "fast" not in firing(c, later)
    [resolved] = slo_alerts.evaluate_burn(c, now=later)["resolved"]
    assert resolved.pk == alert.pk and resolved.state == "resolved"
    assert "Recovered" in mailoutbox[-1].subject


def test_an_objective_of_100_pct_pages_on_any_bad_event_and_says_the_burn_is_unbounded(db):
    c = fresh(attainment_pct=Decimal("100"))
    record_point(c, at=NOW - MINUTE, good=100, total=100)
    record_point(c, at=NOW, good=99, total=100)
    assert firing(c) == {"fast", "medium", "slow"}
    [alert] = slo_alerts.evaluate_burn(c, now=NOW)["opened"]
    assert "burns its error budget ∞ over 1 h and ∞ over 5 min" in alert.title
    assert "inf" not in alert.title
    # A webhook's body is strict JSON (no Infinity), and reminders never say "inf".
    body = alerts.payload(alert, recovered=False, kind="webhook")
    value = json.loads(body, parse_constant=lambda c: pytest.fail(f"{c} in {body!r}"))
    assert value["alert"]["value"] is None
    _subject, text, _url = alerts._message(alert, recovered=False, event="reminder")
    assert "last measured ∞ x budget burn" in text


def test_between_measurements_the_page_shows_the_burn_the_open_alert_was_raised_on(db):
    # "Within 1 hour" is measured every 12 minutes: a 5-minute short window is empty most of
    # the time, so the page read "no data"/"quiet" beside the alert its rules had just opened.
    c = fresh(target=Decimal("60"))
    every = timedelta(minutes=12)
    n = 4 * 24 * 5  # four days of measurements
    series(c, NOW - (n - 1) * every, n - 5, step=every, good=1000, total=1000)
    series(c, NOW - 4 * every, 5, step=every, good=900, total=1000)  # the last hour: 10 % bad
    [alert] = slo_alerts.evaluate_burn(c, now=NOW)["opened"]
    assert alert.fingerprint.endswith(":fast")
    for later in (MINUTE, 6 * MINUTE, 11 * MINUTE):
        fast = next(r for r in slo.compliance(c, end=NOW + later).rules if r.rule.name == "fast")
        assert (fast.short_burn, fast.firing, fast.short_window) == (100.0, True, every), later
    # Until the next measurement: the alert stays open, and so does the page say.
    assert slo_alerts.evaluate_burn(c, now=NOW + 11 * MINUTE)["resolved"] == []


def test_burn_alerts_follow_the_criterion_monitors_route(db):
    c = fresh()
    monitor = Monitor.objects.create(
        project=c.project, kind="criterion", name="lag", criterion=c, severity="warning"
    )
    steady_then(c, 60, 980)
    [alert] = slo_alerts.evaluate_burn(c, now=NOW)["opened"]
    assert alert.monitor_id == monitor.pk


def test_rule_windows_scale_to_a_criterion_window_other_than_30_days(db):
    c = fresh(window_value=3)  # a tenth of 30 days
    fast = next(r for r in slo.compliance(c, end=NOW).rules if r.rule.name == "fast")
    # 30 seconds scaled, but never shorter than its one-minute measuring interval.
    assert fast.long_window == timedelta(minutes=6) and fast.short_window == MINUTE
    slow = next(r for r in slo.compliance(c, end=NOW).rules if r.rule.name == "slow")
    assert slow.long_window == timedelta(hours=7, minutes=12)
    assert "ticket when the burn rate over 7.2 h" in slow.text


def test_record_and_evaluate_stores_the_point_then_checks_the_rules(db):
    c = fresh()
    steady_then(c, 59, 980)
    point = slo_alerts.record_and_evaluate(c, at=NOW + MINUTE, good=980, total=1000)
    assert point.resolution == "raw" and point.points == 1
    assert Alert.objects.filter(fingerprint=f"slo:{c.pk}:fast", state="open").exists()


def test_roll_ups_run_from_celery_beat(db):
    from django_celery_beat.models import PeriodicTask

    from aethon.celery import app

    entry = PeriodicTask.objects.get(task="planner.slo_tasks.roll_up")
    assert entry.interval.every == 600 and entry.enabled
    assert "planner.slo_tasks.roll_up" in app.tasks


@pytest.mark.parametrize(
    ("bad", "total", "expected"),
    [
        # 99.9 %: 0.1 % of errors allowed. Exactly on a threshold is not over it; one bad
        # event more is, however many events the window holds.
        (1, 1000, set()),  # burn exactly 1
        (2, 1999, {"slow"}),
        (6, 1000, {"slow"}),  # burn exactly 6
        (144, 10_000, {"slow", "medium"}),  # burn exactly 14.4
        (100_001, 100_000_000, {"slow"}),  # burn 1.00001
        (600_001, 100_000_000, {"slow", "medium"}),  # burn 6.00001
        (1_440_000, 100_000_000, {"slow", "medium"}),  # burn exactly 14.4
        (1_440_001, 100_000_000, {"slow", "medium", "fast"}),  # burn 14.40001
    ],
)
def test_each_rule_fires_only_over_its_threshold_exactly(db, bad, total, expected):
    c = fresh()
    # One measurement at NOW: every window of every rule holds it alone.
    record_point(c, at=NOW, good=total - bad, total=total)
    assert firing(c) == expected
