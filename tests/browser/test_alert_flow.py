"""A criterion picked from the catalogue → its one-click monitor → a failing scheduled run →
the alert, in the figure's unit, routed to the named channel → acknowledged in the browser.
Runs execute in the test thread (what the Celery worker would do)."""

from django.core import mail
from playwright.sync_api import Page, expect

from planner.models import Alert, AlertChannel, Monitor, SystemEndpoint, ValidationRun
from planner.runs import service as validation
from planner.runs.tasks import run_validation
from tests.browser.conftest import sign_in
from tests.factories import SystemEndpointFactory, ready_project

HALF_TARGET_CSV = "id,active,email\n1,1,ada@example.com\n"


def test_criterion_monitor_alert_routed_and_acknowledged(page: Page, live_server, monkeypatch):
    project, connection = ready_project()
    base = f"{live_server.url}/projects/{project.pk}"
    sign_in(page, live_server.url, project.owner)

    # Step 1: a criterion measured by the agreement figure.
    page.goto(f"{base}/steps/1/")
    form = page.get_by_test_id("criterion-table").locator("form.add-row")
    form.locator("#id_add-criterion-metric").fill("records agreeing")
    form.locator("#id_add-criterion-metric_key").select_option("agreement_pct")
    form.locator("#id_add-criterion-comparator").select_option(">=")
    form.locator("#id_add-criterion-target").fill("99")
    form.locator("#id_add-criterion-window_value").fill("30")
    form.get_by_role("button", name="Add success criterion").click()
    expect(page.get_by_test_id("criterion-table")).to_contain_text("Agreement (%)")

    # Step 6: one click makes the monitor that alerts on its breach (< 99 %).
    page.goto(f"{base}/steps/6/")
    item = page.get_by_test_id("criteria-coverage").locator("li", has_text="records agreeing")
    item.get_by_role("button", name="Add a monitor for it").click()
    expect(page.get_by_test_id("monitor-table")).to_contain_text("15 minutes")
    monitor = Monitor.objects.get(project=project, criterion__metric="records agreeing")
    assert monitor.comparator == "<" and monitor.unit == "%"

    # The alerts page: a channel named on-call that takes critical alerts.
    page.goto(f"{base}/alerts/")
    channel = page.get_by_test_id("channel-form")
    channel.get_by_label("Kind").select_option("email")
    channel.get_by_label("Address or URL").fill("oncall@example.com")
    channel.get_by_label("Route name").fill("on-call")
    channel.get_by_label("Severities").fill("critical")
    channel.get_by_role("button", name="Add").click()
    expect(page.locator("#channels")).to_contain_text("on-call")
    assert AlertChannel.objects.get(project=project).severities == "critical"
    Monitor.objects.filter(pk=monitor.pk).update(alert_route="on-call", severity="critical")

    # A scheduled run against a target missing half the records fails the criterion.
    SystemEndpoint.objects.filter(system=connection.target).delete()
    SystemEndpointFactory(system=connection.target, csv=HALF_TARGET_CSV)
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    real = validation.execute_run
    monkeypatch.setattr(
        validation, "execute_run", lambda pk, task_id="": real(pk, task_id, heartbeat=False)
    )
    mail.outbox.clear()
    run = validation.start_validation_run(connection, None, trigger=ValidationRun.Trigger.SCHEDULE)
    run_validation.run(run.pk)
    alert = Alert.objects.get(project=project, monitor=monitor)
    assert alert.unit == "%" and alert.value == 50.0
    # Routed to on-call only; the project's other monitors (no channel of their route) go to
    # the owners and editors instead.
    oncall = [m for m in mail.outbox if m.to == ["oncall@example.com"]]
    assert len(oncall) == 1 and "records agreeing" in oncall[0].subject
    assert all("records agreeing" not in m.subject for m in mail.outbox if m not in oncall)

    page.goto(f"{base}/alerts/")
    table = page.get_by_test_id("alerts-table")
    expect(table).to_contain_text("50 %")
    expect(table).to_contain_text("opened → email: ok")
    page.get_by_test_id(f"ack-{alert.pk}").get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_test_id(f"ack-{alert.pk}")).to_contain_text(project.owner.username)
    alert.refresh_from_db()
    assert alert.acknowledged_by == project.owner
