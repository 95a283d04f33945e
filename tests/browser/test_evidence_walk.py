"""The whole evidence walk in one go, at desktop and at phone width: a criterion picked from the
catalogue → its one-click monitor → a failing scheduled run → the alert routed to its channel
and acknowledged → a test case refuses that failed run as evidence → an approver other than the
author signs → go-live confirmed → reverted with a reason. Runs execute in the test thread (what
the Celery worker would do)."""

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from planner.models import (
    Alert,
    AlertChannel,
    ApproverRequirement,
    GoLive,
    GoLiveRevert,
    Monitor,
    Role,
    SignOff,
    SystemEndpoint,
    TestCase,
    ValidationRun,
)
from planner.runs import service as validation
from planner.runs.tasks import run_validation
from tests.browser.conftest import sign_in
from tests.factories import (
    CLEAN_TARGET_CSV,
    MembershipFactory,
    SystemEndpointFactory,
    ready_project,
)

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SIDEWAYS_SCROLL = "document.documentElement.scrollWidth > window.innerWidth"
HALF_TARGET_CSV = "id,active,email\n1,1,ada@example.com\n"


def scheduled_run(connection, target_csv: str) -> ValidationRun:
    """A scheduled run of `connection` against a target holding `target_csv`."""
    SystemEndpoint.objects.filter(system=connection.target).delete()
    SystemEndpointFactory(system=connection.target, csv=target_csv)
    run = validation.start_validation_run(connection, None, trigger=ValidationRun.Trigger.SCHEDULE)
    run_validation.run(run.pk)
    run.refresh_from_db()
    return run


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_evidence_walk_from_criterion_to_go_live_and_back(
    page: Page, browser, live_server, monkeypatch, celery_eager, viewport
):
    page.set_viewport_size(viewport)
    project, connection = ready_project()
    base = f"{live_server.url}/projects/{project.pk}"
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    real = validation.execute_run
    monkeypatch.setattr(
        validation, "execute_run", lambda pk, task_id="": real(pk, task_id, heartbeat=False)
    )
    sign_in(page, live_server.url, project.owner)

    # Step 1: a criterion measured by the agreement figure.
    page.goto(f"{base}/steps/1/")
    assert not page.evaluate(SIDEWAYS_SCROLL), "step 1 scrolls sideways"
    form = page.get_by_test_id("criterion-table").locator("form.add-row")
    form.locator("#id_add-criterion-metric").fill("records agreeing")
    form.locator("#id_add-criterion-metric_key").select_option("agreement_pct")
    form.locator("#id_add-criterion-comparator").select_option(">=")
    form.locator("#id_add-criterion-target").fill("99")
    form.locator("#id_add-criterion-window_value").fill("30")
    form.get_by_role("button", name="Add success criterion").click()
    expect(page.get_by_test_id("criterion-table")).to_contain_text("records agreeing")

    # Step 6: one click makes the monitor that alerts on its breach (< 99 %).
    page.goto(f"{base}/steps/6/")
    item = page.get_by_test_id("criteria-coverage").locator("li", has_text="records agreeing")
    item.get_by_role("button", name="Add a monitor for it").click()
    expect(page.get_by_test_id("monitor-table")).to_contain_text("15 minutes")
    monitor = Monitor.objects.get(project=project, criterion__metric="records agreeing")
    assert monitor.comparator == "<" and monitor.unit == "%"

    # A channel named on-call that takes critical alerts; the monitor routes there.
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

    # A scheduled run against a target missing half the records breaks the criterion.
    mail.outbox.clear()
    failed = scheduled_run(connection, HALF_TARGET_CSV)
    assert failed.status == ValidationRun.Status.FAILED
    alert = Alert.objects.get(project=project, monitor=monitor)
    assert alert.unit == "%" and alert.value == 50.0
    oncall = [m for m in mail.outbox if m.to == ["oncall@example.com"]]
    assert len(oncall) == 1 and "records agreeing" in oncall[0].subject
    # Routed to on-call only; monitors without a channel of their route go to owners/editors.
    assert all("records agreeing" not in m.subject for m in mail.outbox if m not in oncall)

    # The alert is acknowledged in the browser.
    page.goto(f"{base}/alerts/")
    expect(page.get_by_test_id("alerts-table")).to_contain_text("50 %")
    expect(page.get_by_test_id("alerts-table")).to_contain_text("opened → email: ok")
    page.get_by_test_id(f"ack-{alert.pk}").get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_test_id(f"ack-{alert.pk}")).to_contain_text(project.owner.username)
    alert.refresh_from_db()
    assert alert.acknowledged_by == project.owner

    # That failed run cannot be the evidence of a passed test case.
    case = TestCase.objects.filter(project=project, status="passed").first()
    page.goto(f"{base}/runs/{failed.pk}/")
    page.locator("select[name=test_case]").select_option(str(case.pk))
    page.get_by_role("button", name="Link as evidence").click()
    expect(page.locator("ul.messages")).to_contain_text("it cannot be its evidence")
    case.refresh_from_db()
    assert case.validation_run_id != failed.pk

    # The target is fixed; the next scheduled run passes and the criterion is met again.
    assert scheduled_run(connection, CLEAN_TARGET_CSV).status == ValidationRun.Status.PASSED

    # Step 4 needs an approver's sign-off, and the owner who wrote it cannot give it.
    ApproverRequirement.objects.filter(project=project, step=4).update(roles=["approver"])
    approver = MembershipFactory(project=project, role=Role.APPROVER).user
    page.goto(f"{base}/go-live/")
    expect(page.get_by_test_id("reasons")).to_contain_text("Step 4: Awaiting sign-off")
    page.goto(f"{base}/steps/4/")
    page.locator("#signoff summary").click()
    page.get_by_role("button", name="Record sign-off").click()
    expect(page.locator("#signoff")).to_contain_text("Your role (Owner) is not one of them")
    assert not SignOff.objects.filter(project=project, step=4).exists()

    # An approver other than the author signs step 4.
    context = browser.new_context(viewport=viewport)
    try:
        other = context.new_page()
        sign_in(other, live_server.url, approver)
        other.goto(f"{base}/steps/4/")
        other.locator("#signoff summary").click()
        other.get_by_role("button", name="Record sign-off").click()
        expect(other.locator("#signoff")).to_contain_text("Approved")
    finally:
        context.close()

    # Go-live asks for confirmation, then records it with the evidence.
    page.goto(f"{base}/go-live/")
    expect(page.get_by_test_id("verdict")).to_contain_text("Ready to go live")
    page.get_by_label("I confirm the go-live on the evidence above").check()
    page.get_by_role("button", name="Mark live").click()
    expect(page.get_by_role("status").first).to_contain_text("is live")
    live = GoLive.objects.get(project=project)
    assert live.snapshot["evidence"]["approvals"][0]["user"] == approver.username

    # Back to not live, with the reason, recorded in the history.
    page.goto(f"{base}/go-live/")
    page.get_by_label("Reason (recorded in the history)").fill("Billing rejects VAT ids")
    page.get_by_role("button", name="Revert to not live").click()
    expect(page.get_by_test_id("verdict")).to_contain_text("Ready to go live")
    expect(page.get_by_test_id("golive-history")).to_contain_text("Billing rejects VAT ids")
    assert GoLiveRevert.objects.get(project=project).user == project.owner
