"""Pages that lean on script or inline styles work in Chromium under the strict Content Security
Policy; the `page` fixture fails any test that logs a violation."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.factories import ConnectionFactory, ProjectFactory, ValidationRunFactory

from .conftest import CSP_VIOLATION, DEFAULT_TIMEOUT_MS
from .test_step1_and_pattern_flow import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def test_the_violation_detector_sees_what_the_policy_blocks(browser, live_server):
    # Without this, a detector that matched nothing would let every flow pass silently.
    context = browser.new_context()
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    messages = []
    page.on("console", lambda m: messages.append(m.text))
    probe = f"{live_server.url}/csp-probe"
    page.route(
        probe,
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            headers={"Content-Security-Policy": "script-src 'self'; style-src 'self'"},
            body="<title>probe</title><script>document.title='ran'</script>"
            '<p style="color: red">x</p><img src="x" onerror="document.title=\'ran\'">',
        ),
    )
    page.goto(probe)
    page.wait_for_timeout(300)
    try:
        assert page.title() == "probe"
        blocked = [m for m in messages if CSP_VIOLATION.search(m)]
        assert len(blocked) >= 2, messages
    finally:
        context.close()


def test_the_mapping_editors_connection_switcher_navigates(page: Page, live_server):
    project = ProjectFactory()
    first = ConnectionFactory(project=project)
    second = ConnectionFactory(project=project)
    sign_in(page, live_server.url, project.owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/steps/2/connections/{first.pk}/")
    page.get_by_label("Other connection").select_option(label=str(second))
    expect(page).to_have_url(re.compile(rf"/steps/2/connections/{second.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(str(second.source))


def test_progress_bars_and_row_tables_are_drawn_without_inline_styles(page: Page, live_server):
    project = ProjectFactory()
    connection = ConnectionFactory(project=project)
    run = ValidationRunFactory(project=project, connection=connection)
    sign_in(page, live_server.url, project.owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/systems/")
    # A row table is a real table: four columns and the buttons' column, no style= anywhere.
    table = page.get_by_test_id("system-table")
    expect(table.locator("thead th[scope=col]")).to_have_count(5)
    assert table.evaluate("e => e.querySelector('table').rows[0].cells.length") == 5
    assert table.evaluate("e => e.querySelectorAll('[style]').length") == 0
    bar = page.get_by_test_id("readiness").locator(".bar")
    expect(bar.locator("rect")).to_have_attribute("width", re.compile(r"^\d+%$"))
    page.goto(f"{live_server.url}/projects/{project.pk}/runs/{run.pk}/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def test_the_runbook_preview_is_styled(page: Page, live_server):
    project = ProjectFactory()
    sign_in(page, live_server.url, project.owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/runbook/preview/")
    bar = page.locator(".preview-bar")
    expect(bar).to_be_visible()
    # preview.css makes the bar sticky: it only applies if the nonce let the <style> in.
    assert bar.evaluate("e => getComputedStyle(e).position") == "sticky"


def test_the_api_docs_render(page: Page, live_server):
    # Swagger UI's own scripts (local, not from a CDN) ran under the policy and drew the page.
    page.goto(f"{live_server.url}/api/docs")
    expect(page.locator("#swagger-ui .swagger-ui").first).to_be_visible()


def test_the_admin_sign_in_page_works(page: Page, live_server):
    page.goto(f"{live_server.url}/admin/login/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
