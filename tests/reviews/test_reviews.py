"""Go-live gate, health reviews (schedule, catch-up, partial failure, report), alerts."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from planner.checklist import golive
from planner.models import (
    Alert,
    AlertChannel,
    CriterionResult,
    FeedbackItem,
    GoLive,
    HealthReview,
    Monitor,
    ReviewSchedule,
    Role,
    ValidationRun,
)
from planner.reviews import golive as going_live
from planner.reviews import schedule as review_schedule
from planner.reviews import service as reviews
from planner.reviews import tasks as review_tasks
from planner.runs import alerts
from planner.runs import service as validation
from tests.conftest import client_for
from tests.factories import (
    CLEAN_TARGET_CSV,
    ConnectionFactory,
    CriterionFactory,
    MembershipFactory,
    MonitorFactory,
    ProjectFactory,
    inline_workers,
    ready_project,
)

# The source has 2 records; the target misses one of them, so 1 of 2 keys differ (50 %).
HALF_TARGET_CSV = "id,active,email\n1,1,ada@example.com\n"


@pytest.fixture(autouse=True)
def quiet_runs(monkeypatch):
    """Validation runs execute in the test thread (no broker, no heartbeat thread)."""
    inline_workers(monkeypatch)


def test_the_verdict_lists_every_blocking_reason_with_its_place(db):
    project, connection = ready_project()
    assert golive.verdict(project).ready, golive.verdict(project).reasons
    # A failing rule, a missing sign-off, a criterion without a monitor, a stale run.
    CriterionFactory(project=project, metric="error rate", unit="%", target=Decimal("1"))
    from planner.models import ApproverRequirement

    ApproverRequirement.objects.filter(project=project, step=3).delete()
    ValidationRun.objects.filter(project=project).update(
        finished_at=timezone.now() - timedelta(days=30)
    )
    v = golive.verdict(project)
    assert not v.ready
    texts = {r.text: r for r in v.reasons}
    monitor = next(r for t, r in texts.items() if "has no monitor" in t)
    assert monitor.href.startswith(reverse("planner:step", args=[project.pk, 6]) + "#uncovered-")
    signoff = next(r for r in v.reasons if r.kind == "signoff")
    assert signoff.step == 3 and signoff.href.endswith("#signoff")
    stale = next(r for r in v.reasons if r.kind == "run")
    assert "older than 7 days" in stale.text
    assert stale.href == reverse(
        "planner:run_show", args=[project.pk, connection.validation_runs.get().pk]
    )

    page = client_for(project.owner).get(reverse("planner:golive", args=[project.pk]))
    assert b"Not ready to go live" in page.content and monitor.href.encode() in page.content
    # Marking live is refused while anything blocks.
    with pytest.raises(going_live.GoLiveRefused):
        going_live.mark_live(project, project.owner)


def test_marking_live_records_who_when_and_the_snapshot_and_schedules_reviews(db):
    project, _ = ready_project()
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    url = reverse("planner:golive", args=[project.pk])
    assert client_for(viewer).post(url).status_code == 403
    response = client_for(project.owner).post(url, {"confirm": "yes"})
    assert response.status_code == 302
    live = GoLive.objects.get(project=project)
    assert live.user == project.owner
    assert live.snapshot["ready"] is True and live.snapshot["percent"] == 100
    assert set(live.snapshot["step_hashes"]) == {str(n) for n in range(1, 8)}
    schedule = ReviewSchedule.objects.get(project=project)
    assert schedule.next_due == review_schedule.add_months(live.created_at, 1)
    entry = PeriodicTask.objects.get(name=review_schedule.entry_name(project.pk))
    assert entry.clocked.clocked_time == schedule.next_due and entry.one_off
    # Only once.
    with pytest.raises(going_live.GoLiveRefused):
        going_live.mark_live(project, project.owner)


def test_cadence_dates_monthly_then_quarterly():
    s = ReviewSchedule(first_every_months=1, first_count=3, then_every_months=3)
    start = timezone.datetime(2026, 1, 31, 9, 0, tzinfo=timezone.UTC)
    assert [d.date().isoformat() for d in review_schedule.due_dates(s, start, 5)] == [
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-07-31",
        "2026-10-31",
    ]


def test_changing_the_cadence_in_the_ui_changes_the_schedule_at_once(db):
    project, _ = ready_project()
    live = going_live.mark_live(project, project.owner)
    schedule = ReviewSchedule.objects.get(project=project)
    client = client_for(project.owner)
    response = client.post(
        reverse("planner:review_schedule", args=[project.pk]),
        {
            "first_every_months": 2,
            "first_count": 1,
            "then_every_months": 6,
            "expected_version": schedule.version,
        },
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.next_due == review_schedule.add_months(live.created_at, 2)
    entry = PeriodicTask.objects.get(name=review_schedule.entry_name(project.pk))
    assert entry.clocked.clocked_time == schedule.next_due
    # The dispatcher follows the new date: nothing at +1 month, a review at +2 months.
    assert review_tasks.start_if_due(project.pk, live.created_at + timedelta(days=35)) is None
    started = review_tasks.start_if_due(project.pk, live.created_at + timedelta(days=63))
    assert HealthReview.objects.get(pk=started).due_at == review_schedule.add_months(
        live.created_at, 2
    )
    # A zero interval is refused, naming the field.
    bad = client.post(
        reverse("planner:review_schedule", args=[project.pk]),
        {
            "first_every_months": 0,
            "first_count": 1,
            "then_every_months": 6,
            "expected_version": schedule.version,
        },
    )
    assert bad.status_code == 200 and b"first, every (months): " in bad.content.lower()
    # Pausing removes the beat entry.
    schedule.refresh_from_db()
    client.post(
        reverse("planner:review_schedule", args=[project.pk]),
        {
            "first_every_months": 2,
            "first_count": 1,
            "then_every_months": 6,
            "paused": "on",
            "expected_version": schedule.version,
        },
    )
    assert not PeriodicTask.objects.filter(name=review_schedule.entry_name(project.pk)).exists()


def test_reviews_missed_while_workers_were_down_run_once(db):
    project, _ = ready_project()
    live = going_live.mark_live(project, project.owner)
    # Workers were down for 5 months: due dates at +1, +2, +3 months and +6 is still ahead.
    later = live.created_at + timedelta(days=5 * 31)
    for _tick in range(4):  # several dispatcher ticks (and the beat entry) after recovery
        review_tasks.start_if_due(project.pk, later)
    reviews_made = list(HealthReview.objects.filter(project=project))
    assert len(reviews_made) == 1
    review = reviews_made[0]
    assert review.due_at == review_schedule.add_months(live.created_at, 1)
    assert review.missed_occurrences == 2  # +2 and +3 months
    schedule = ReviewSchedule.objects.get(project=project)
    assert schedule.next_due == review_schedule.add_months(live.created_at, 6)


def test_the_dispatcher_task_starts_due_reviews_once(db, monkeypatch):
    project, _ = ready_project()
    going_live.mark_live(project, project.owner)
    ReviewSchedule.objects.filter(project=project).update(
        next_due=timezone.now() - timedelta(days=70)
    )
    first = review_tasks.dispatch_due_reviews.run()
    second = review_tasks.dispatch_due_reviews.run()
    assert len(first) == 1 and second == []
    assert HealthReview.objects.filter(project=project).count() == 1


def test_a_review_by_hand_measures_compares_and_reports(db):
    project, connection = ready_project()
    going_live.mark_live(project, project.owner)
    FeedbackItem.objects.create(project=project, summary="Invoice sent to an inactive customer")
    approver = MembershipFactory(project=project, role=Role.APPROVER).user
    client = client_for(approver)
    response = client.post(reverse("planner:review_start", args=[project.pk]))
    review = HealthReview.objects.get(project=project)
    assert response.status_code == 302 and response["Location"].endswith(f"/reviews/{review.pk}/")
    assert review.status == HealthReview.Status.HEALTHY, review.parts
    assert {p["part"] for p in review.parts} == {
        "connectivity",
        "mapping",
        "reconciliation",
        "criteria",
    }
    assert review.kpis["mismatch_rate_pct"] == 0 and review.kpis["error_rate_pct"] == 0
    results = {r.criterion_text.split(" ")[0]: r for r in review.criteria.all()}
    assert results["mismatch"].outcome == CriterionResult.Outcome.MET
    assert results["mismatch"].measured == 0
    # Sync latency is measured outside Aethon: judged on the team's dated evidence.
    assert results["sync"].outcome == CriterionResult.Outcome.MET
    assert results["sync"].measured == 3 and "manual evidence of" in results["sync"].reason
    page = client.get(response["Location"])
    assert b"Invoice sent to an inactive customer" in page.content
    assert b"manual evidence of" in page.content and b"<svg" in page.content
    pdf = client.get(reverse("planner:review_pdf", args=[project.pk, review.pk]))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    # A viewer cannot start one.
    viewer = client_for(MembershipFactory(project=project, role=Role.VIEWER).user)
    assert viewer.post(reverse("planner:review_start", args=[project.pk])).status_code == 403


@pytest.mark.parametrize("finished", [False, True])
def test_the_report_poll_gets_the_report_alone_running_or_finished(db, finished):
    project, _ = ready_project()
    going_live.mark_live(project, project.owner)
    review = HealthReview.objects.create(project=project, status=HealthReview.Status.RUNNING)
    if finished:
        HealthReview.objects.filter(pk=review.pk).update(status=HealthReview.Status.HEALTHY)
    url = reverse("planner:review_show", args=[project.pk, review.pk])
    client = client_for(project.owner)
    polled = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert polled.lstrip().startswith('<div id="review-report"')
    assert polled.count('id="review-report"') == 1
    assert 'id="navigator"' not in polled and "<html" not in polled
    # Still polling while running; the finished report stops and offers its PDF.
    assert ('hx-trigger="every 2s"' in polled) is not finished
    assert ("Download PDF" in polled) is finished
    # A plain visit is the whole page, with the report once.
    page = client.get(url).content.decode()
    assert 'id="navigator"' in page and page.count('id="review-report"') == 1


def test_a_review_before_go_live_is_refused(db):
    project, _ = ready_project()
    with pytest.raises(reviews.ReviewRefused):
        reviews.start_review(project, project.owner)


def test_a_review_that_fails_part_way_keeps_what_it_measured(db, monkeypatch):
    project, first = ready_project()
    going_live.mark_live(project, project.owner)
    second = ConnectionFactory(project=project, source=first.target, target=first.source)
    real = validation.execute_run

    def broken(run_id, *args, **kwargs):
        if ValidationRun.objects.get(pk=run_id).connection_id == second.pk:
            raise ConnectionResetError("database went away")
        return real(run_id, *args, **kwargs)

    monkeypatch.setattr(validation, "execute_run", broken)
    review = reviews.start_review(project, project.owner)
    review.refresh_from_db()
    assert review.status == HealthReview.Status.INCOMPLETE
    failed = review.failed_parts
    assert len(failed) == 1 and failed[0]["connection"] == str(second)
    assert "database went away" in failed[0]["detail"]
    measured = [p for p in review.parts if p["connection"] == str(first)]
    assert {p["status"] for p in measured} == {"passed"}
    assert review.kpis["mismatch_rate_pct"] == 0


def _run(connection, target_csv):
    from planner.models import SystemEndpoint
    from tests.factories import SystemEndpointFactory

    SystemEndpoint.objects.filter(system=connection.target).delete()
    SystemEndpointFactory(system=connection.target, csv=target_csv)
    run = validation.start_validation_run(connection, None, trigger=ValidationRun.Trigger.SCHEDULE)
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    return run


def test_alerts_open_once_per_breach_and_recover(db, monkeypatch):
    project, connection = ready_project()
    Monitor.objects.filter(project=project).delete()
    MonitorFactory(
        project=project,
        kind=Monitor.Kind.RECONCILIATION,
        name="mismatch rate",
        comparator=">",
        threshold=Decimal("5"),
        unit="%",
    )
    AlertChannel.objects.create(project=project, kind="slack", target="https://hooks.example.com/x")
    AlertChannel.objects.create(project=project, kind="email", target="ops@example.com")
    sent = []
    monkeypatch.setattr(alerts, "send_webhook", lambda url, body: sent.append(body) or "ok")
    mail.outbox.clear()

    breach = _run(connection, HALF_TARGET_CSV)
    outcome = alerts.evaluate_run(breach)
    assert len(outcome["opened"]) == 1
    alert = Alert.objects.get(project=project)
    assert alert.state == Alert.State.OPEN and alert.value == 50.0
    assert len(mail.outbox) == 1 and "mismatch rate" in mail.outbox[0].subject
    assert len(sent) == 1 and b"rotating_light" in sent[0]

    # Still breached: the same alert, no new notification.
    again = _run(connection, HALF_TARGET_CSV)
    assert alerts.evaluate_run(again) == {"opened": [], "resolved": []}
    assert Alert.objects.filter(project=project).count() == 1
    assert len(mail.outbox) == 1 and len(sent) == 1

    # Cleared: resolved, with one recovery message.
    clean = _run(connection, CLEAN_TARGET_CSV)
    assert len(alerts.evaluate_run(clean)["resolved"]) == 1
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED and alert.resolved_at
    assert len(mail.outbox) == 2 and mail.outbox[1].subject.startswith("[Aethon] Recovered")
    assert len(sent) == 2 and b"white_check_mark" in sent[1]
    assert [d["event"] for d in alert.deliveries] == ["opened", "opened", "recovered", "recovered"]

    # A new breach later is a new alert.
    alerts.evaluate_run(_run(connection, HALF_TARGET_CSV))
    assert Alert.objects.filter(project=project, state="open").count() == 1
    assert Alert.objects.filter(project=project).count() == 2


def test_a_scheduled_run_task_evaluates_alerts(db, monkeypatch):
    from planner.runs.tasks import run_validation

    project, connection = ready_project(HALF_TARGET_CSV)
    Monitor.objects.filter(project=project).delete()
    MonitorFactory(project=project, kind=Monitor.Kind.RECONCILIATION, threshold=Decimal("5"))
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    real = validation.execute_run
    monkeypatch.setattr(
        validation, "execute_run", lambda pk, task_id="": real(pk, task_id, heartbeat=False)
    )
    run = validation.start_validation_run(connection, None, trigger=ValidationRun.Trigger.SCHEDULE)
    run_validation.run(run.pk)
    assert Alert.objects.filter(project=project, state="open").count() == 1
    # A run started from the page does not alert.
    Alert.objects.all().delete()
    run = validation.start_validation_run(connection, None, trigger=ValidationRun.Trigger.UI)
    run_validation.run(run.pk)
    assert not Alert.objects.exists()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest"]
)
def test_a_webhook_to_a_private_address_is_refused(db, url):
    project = ProjectFactory()
    client = client_for(project.owner)
    response = client.post(
        reverse("planner:alerts", args=[project.pk]), {"kind": "webhook", "target": url}
    )
    assert response.status_code == 400
    assert b"Address or URL: Connection to" in response.content
    assert not AlertChannel.objects.exists()
    # And at send time too (a channel stored before, or DNS that changed since).
    assert alerts.send_webhook(url, b"{}").startswith("refused: Connection to")


def test_portfolio_dashboard_shows_readiness_live_reviews_and_alerts(db):
    project, connection = ready_project()
    going_live.mark_live(project, project.owner)
    reviews.start_review(project, project.owner)
    Alert.objects.create(project=project, fingerprint="x", severity="critical", title="t")
    other = ProjectFactory(name="Hidden project")
    page = client_for(project.owner).get(reverse("planner:project_list"))
    row = page.content.decode()
    assert "CRM to billing" in row and "Hidden project" not in row
    assert "100% · ready" in row and ">live<" in row and "Healthy" in row
    schedule = ReviewSchedule.objects.get(project=project)
    assert f"{schedule.next_due:%-d %b %Y}" in row
    assert 'badge warn">1<' in row
    assert other.pk
