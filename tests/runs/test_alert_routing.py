"""Monitors that say what they mean: breach per comparator, following their criterion, units,
routing by severity, acknowledgement, reminders and escalation."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from planner.checklist.signoff import step_hashes
from planner.models import AlertChannel, Comparator, Monitor, RunStage, ValidationRun
from planner.runs import alerts
from tests.conftest import client_for
from tests.factories import (
    CriterionFactory,
    MembershipFactory,
    MonitorFactory,
    ProjectFactory,
    ValidationRunFactory,
)

# (criterion comparator, target, a value that meets it, a value that breaks it)
CASES = [
    ("<=", 5, 5, 5.5),
    ("<", 5, 4.9, 5),
    (">=", 99, 99, 98.9),
    (">", 99, 99.5, 99),
    ("=", 100, 100, 99.5),
]


@pytest.mark.parametrize(("comparator", "target", "meets", "breaks"), CASES)
def test_the_one_click_monitor_alerts_exactly_when_its_criterion_is_broken(
    db, comparator, target, meets, breaks
):
    project = ProjectFactory()
    c = CriterionFactory(
        project=project,
        metric="agreement",
        metric_key="agreement_pct",
        unit="%",
        comparator=comparator,
        target=Decimal(target),
    )
    url = reverse("planner:criterion_monitor", args=[project.pk, c.pk])
    assert client_for(project.owner).post(url).status_code == 302
    m = Monitor.objects.get(criterion=c)
    alert_when = Comparator(m.comparator)
    assert Comparator(comparator).holds(meets, target) and not alert_when.holds(meets, target)
    assert not Comparator(comparator).holds(breaks, target) and alert_when.holds(breaks, target)
    # An alert window, not the criterion's 30 days.
    assert (m.window_value, m.window_unit) == (15, "minutes")
    assert m.metric_key == "agreement_pct" and m.unit == "%"


def test_a_monitor_follows_its_criterion_and_step_6_sign_off_goes_stale(db):
    project = ProjectFactory()
    c = CriterionFactory(
        project=project, metric="error rate", unit="%", comparator="<=", target=Decimal("1")
    )
    client = client_for(project.owner)
    client.post(reverse("planner:criterion_monitor", args=[project.pk, c.pk]))
    m = Monitor.objects.get(criterion=c)
    # What a step-6 sign-off records now: any change to it makes that sign-off stale.
    signed_hash = step_hashes(project, [6])[6]
    prefix = f"criterion-{c.pk}"
    response = client.post(
        reverse("planner:criterion_edit", args=[project.pk, c.pk]),
        {
            f"{prefix}-expected_version": c.version,
            f"{prefix}-metric": "error rate",
            f"{prefix}-metric_key": "error_rate_pct",
            f"{prefix}-comparator": ">=",
            f"{prefix}-target": "0.5",
            f"{prefix}-unit": "%",
            f"{prefix}-window_value": "30",
            f"{prefix}-window_unit": "days",
        },
    )
    assert response.status_code == 302, response.content
    m.refresh_from_db()
    assert m.threshold == Decimal("0.5") and m.comparator == "<" and m.version == 2
    assert step_hashes(project, [6])[6] != signed_hash  # a sign-off of step 6 is stale


def _run_with(project, connection=None, **figures):
    """A finished run whose reconciliation stage reports `figures` (no systems needed)."""
    run = ValidationRunFactory(project=project, status=ValidationRun.Status.PASSED)
    base = {"source_count": 0, "matched_count": 0, "equal_count": 0}
    RunStage.objects.create(run=run, name="reconciliation", position=0, figures={**base, **figures})
    return run


def test_alert_values_carry_the_figures_own_unit(db):
    project = ProjectFactory()
    # Typed as "records" by hand before the catalogue: the figure is a rate.
    MonitorFactory(
        project=project,
        kind="reconciliation",
        name="mismatches",
        comparator=">",
        threshold=Decimal("10"),
        unit="records",
    )
    run = _run_with(project, source_count=10, matched_count=10, equal_count=8)
    (alert,) = alerts.evaluate_run(run)["opened"]
    assert alert.unit == "%" and alert.value == 20.0
    assert "20 %" in alert.title and "records" not in alert.title
    assert (
        "20 %"
        in client_for(project.owner)
        .get(reverse("planner:alerts", args=[project.pk]))
        .content.decode()
    )


@pytest.fixture
def routed(db, monkeypatch):
    project = ProjectFactory()
    sent = []
    monkeypatch.setattr(alerts, "send_webhook", lambda url, body: sent.append((url, body)) or "ok")
    AlertChannel.objects.create(
        project=project,
        kind="slack",
        name="on-call",
        severities="critical",
        target="https://hooks.example.com/oncall",
    )
    AlertChannel.objects.create(
        project=project, kind="email", name="on-call", severities="warning", target="ops@x.org"
    )
    AlertChannel.objects.create(
        project=project, kind="webhook", name="managers", target="https://hooks.example.com/mgr"
    )
    mail.outbox.clear()
    return project, sent


def test_alerts_go_to_the_named_route_by_severity(routed):
    project, sent = routed
    MonitorFactory(
        project=project,
        kind="reconciliation",
        severity="critical",
        alert_route="on-call",
        threshold=Decimal("10"),
    )
    alerts.evaluate_run(_run_with(project, source_count=10, matched_count=10, equal_count=5))
    assert [url for url, _ in sent] == ["https://hooks.example.com/oncall"]
    assert mail.outbox == []  # the on-call email takes warnings only
    sent.clear()
    MonitorFactory(
        project=project,
        kind="error_rate",
        severity="warning",
        alert_route="on-call",
        threshold=Decimal("10"),
    )
    run = ValidationRunFactory(project=project, status=ValidationRun.Status.PASSED)
    RunStage.objects.create(
        run=run, name="mapping", position=0, figures={"records": 10, "violations": 5}
    )
    alerts.evaluate_run(run)
    assert sent == [] and [m.to for m in mail.outbox] == [["ops@x.org"]]


def test_an_unacknowledged_alert_reminds_then_escalates_and_acknowledging_stops_it(routed):
    project, sent = routed
    MonitorFactory(
        project=project,
        kind="reconciliation",
        severity="critical",
        alert_route="on-call",
        threshold=Decimal("10"),
        remind_every_minutes=10,
        escalate_after_minutes=30,
        escalate_to="managers",
    )
    (alert,) = alerts.evaluate_run(
        _run_with(project, source_count=10, matched_count=10, equal_count=5)
    )["opened"]
    sent.clear()
    t0 = alert.opened_at
    assert alerts.remind_and_escalate(t0 + timedelta(minutes=5)) == {
        "reminded": [],
        "escalated": [],
    }
    assert alerts.remind_and_escalate(t0 + timedelta(minutes=11))["reminded"] == [alert.pk]
    assert alerts.remind_and_escalate(t0 + timedelta(minutes=12))["reminded"] == []
    assert alerts.remind_and_escalate(t0 + timedelta(minutes=22))["reminded"] == [alert.pk]
    assert [u for u, _ in sent] == ["https://hooks.example.com/oncall"] * 2
    assert alerts.remind_and_escalate(t0 + timedelta(minutes=31))["escalated"] == [alert.pk]
    assert sent[-1][0] == "https://hooks.example.com/mgr" and b"alert.escalated" in sent[-1][1]
    alert.refresh_from_db()
    assert alert.reminders == 2 and alert.escalated_at is not None
    assert [d["event"] for d in alert.deliveries] == ["opened", "reminder", "reminder", "escalated"]

    # A viewer cannot acknowledge; an editor can, and the reminders stop.
    url = reverse("planner:alert_acknowledge", args=[project.pk, alert.pk])
    viewer = MembershipFactory(project=project, role="viewer").user
    assert client_for(viewer).post(url).status_code == 403
    editor = MembershipFactory(project=project, role="editor").user
    assert client_for(editor).post(url).status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == editor and alert.acknowledged_at
    later = alert.opened_at + timedelta(hours=5)
    assert alerts.remind_and_escalate(later) == {"reminded": [], "escalated": []}
    page = client_for(editor).get(reverse("planner:alerts", args=[project.pk])).content.decode()
    assert editor.username in page


def test_reminders_run_from_celery_beat(db):
    entry = PeriodicTask.objects.get(name="aethon: alert reminders and escalation")
    assert entry.task == "planner.alert_tasks.remind_and_escalate" and entry.interval.every == 60
    from aethon.celery import app

    assert "planner.alert_tasks.remind_and_escalate" in app.tasks


def test_a_channel_names_its_severities_clearly(db):
    project = ProjectFactory()
    response = client_for(project.owner).post(
        reverse("planner:alerts", args=[project.pk]),
        {"kind": "email", "target": "a@x.org", "name": "ops", "severities": "urgent"},
    )
    assert response.status_code == 400 and b"Unknown severity urgent" in response.content
    assert not AlertChannel.objects.exists()
