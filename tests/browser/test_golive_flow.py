"""A ready project is marked live from the go-live page; a review is started by hand and its
report shows. Validation runs and the review execute in the server thread (what the Celery
workers would do)."""

from playwright.sync_api import Page, expect

from planner.models import GoLive, HealthReview
from tests.browser.conftest import sign_in
from tests.factories import inline_workers, ready_project


def test_mark_a_ready_project_live_then_review_it_by_hand(page: Page, live_server, monkeypatch):
    inline_workers(monkeypatch)
    project, _connection = ready_project()

    sign_in(page, live_server.url, project.owner)
    row = page.get_by_test_id("portfolio").locator("tr", has_text="CRM to billing")
    expect(row).to_contain_text("100% · ready")
    expect(row).to_contain_text("not live")
    row.get_by_role("link", name="CRM to billing").click()
    page.locator("#navigator").get_by_role("link", name="Go-live").click()
    expect(page.get_by_test_id("verdict")).to_contain_text("Ready to go live")
    page.get_by_role("button", name="Mark live").click()

    expect(page.get_by_role("heading", name="Health reviews", level=1)).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("is live")
    expect(page.get_by_test_id("next-review")).not_to_have_text("—")
    assert GoLive.objects.get(project=project).user == project.owner

    page.get_by_role("button", name="Start a review now").click()
    expect(page.get_by_role("heading", name="Health review #", level=1)).to_be_visible()
    expect(page.get_by_test_id("review-status")).to_have_text("Healthy")
    expect(page.get_by_test_id("parts")).to_contain_text("Reconciliation")
    expect(page.get_by_test_id("criteria")).to_contain_text("Met")
    expect(page.get_by_test_id("criteria")).to_contain_text("manual evidence of")
    expect(page.get_by_test_id("trend-chart")).to_be_visible()
    assert HealthReview.objects.filter(project=project).count() == 1

    page.goto(f"{live_server.url}/")
    row = page.get_by_test_id("portfolio").locator("tr", has_text="CRM to billing")
    expect(row).to_contain_text("live")
    expect(row).to_contain_text("Healthy")
