"""The go-live gate, walked at desktop and phone width: a criterion, a test case that refuses a
failed run as its evidence, an approver other than the author signing, go-live confirmed, then
reverted with a reason. (The monitor and alert steps of the full walk join between the
criterion and the test case.)"""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from planner.models import (
    ApproverRequirement,
    GoLive,
    GoLiveRevert,
    Role,
    SignOff,
    SuccessCriterion,
    TestCase,
    ValidationRun,
)
from tests.browser.conftest import sign_in
from tests.factories import MembershipFactory, ValidationRunFactory, ready_project

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.mark.parametrize("width", WIDTHS)
def test_criterion_failed_run_refused_other_approver_signs_go_live_and_revert(
    page: Page, browser, live_server, width, celery_eager
):
    page.set_viewport_size(WIDTHS[width])
    project, connection = ready_project()
    base = f"{live_server.url}/projects/{project.pk}"
    # An earlier run of the same connection failed; the latest one passed.
    failed = ValidationRunFactory(
        project=project,
        connection=connection,
        status=ValidationRun.Status.FAILED,
        created_at=timezone.now() - timedelta(hours=1),
        finished_at=timezone.now() - timedelta(hours=1),
        error="Reconciliation: 3 records differ",
    )
    case = TestCase.objects.filter(project=project, status="passed").first()
    # Step 4 needs an approver's sign-off; the owner (who wrote the plan) cannot sign it.
    ApproverRequirement.objects.filter(project=project, step=4).update(roles=["approver"])
    approver = MembershipFactory(project=project, role=Role.APPROVER).user

    sign_in(page, live_server.url, project.owner)

    # The criterion, measurable, in step 1.
    page.goto(f"{base}/steps/1/")
    criterion = SuccessCriterion.objects.filter(project=project).first()
    expect(page.locator(f"#criterion-{criterion.pk}")).to_contain_text(criterion.metric)

    # The failed run cannot be the evidence of a passed test case.
    page.goto(f"{base}/runs/{failed.pk}/")
    page.locator("select[name=test_case]").select_option(str(case.pk))
    page.get_by_role("button", name="Link as evidence").click()
    expect(page.locator("ul.messages")).to_contain_text("it cannot be its evidence")
    case.refresh_from_db()
    assert case.validation_run_id != failed.pk

    # Go-live is blocked by step 4's missing sign-off, and the owner who wrote it cannot sign it.
    page.goto(f"{base}/go-live/")
    expect(page.get_by_test_id("reasons")).to_contain_text("Step 4: Awaiting sign-off")
    page.goto(f"{base}/steps/4/")
    page.locator("#signoff summary").click()
    page.get_by_role("button", name="Record sign-off").click()
    expect(page.locator("#signoff")).to_contain_text("Your role (Owner) is not one of them")
    assert not SignOff.objects.filter(project=project, step=4).exists()

    # An approver other than the author signs step 4.
    context = browser.new_context(viewport=WIDTHS[width])
    try:
        other = context.new_page()
        sign_in(other, live_server.url, approver)
        other.goto(f"{base}/steps/4/")
        other.locator("#signoff summary").click()
        other.get_by_role("button", name="Record sign-off").click()
        expect(other.locator("#signoff")).to_contain_text("Approved")
    finally:
        context.close()
    assert SignOff.objects.get(project=project, step=4).user == approver

    # Go-live asks for confirmation, then records it.
    page.goto(f"{base}/go-live/")
    expect(page.get_by_test_id("verdict")).to_contain_text("Ready to go live")
    confirm = page.get_by_label("I confirm the go-live on the evidence above")
    confirm.check()
    page.get_by_role("button", name="Mark live").click()
    expect(page.get_by_role("status").first).to_contain_text("is live")
    live = GoLive.objects.get(project=project)
    assert live.snapshot["evidence"]["approvals"][0]["user"] == approver.username

    # After go-live: the live state and what changed since, no blocking list.
    page.goto(f"{base}/go-live/")
    expect(page.get_by_test_id("verdict")).to_contain_text("Live")
    expect(page.get_by_test_id("since-live")).to_contain_text("Nothing")
    expect(page.get_by_test_id("reasons")).to_have_count(0)

    # Back to not live, with the reason, recorded in the history.
    page.get_by_label("Reason (recorded in the history)").fill("Billing rejects VAT ids")
    page.get_by_role("button", name="Revert to not live").click()
    expect(page.get_by_test_id("verdict")).to_contain_text("Ready to go live")
    expect(page.get_by_test_id("golive-history")).to_contain_text("Billing rejects VAT ids")
    assert GoLiveRevert.objects.get(project=project).user == project.owner
