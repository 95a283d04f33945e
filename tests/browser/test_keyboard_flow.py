"""Keyboard users: a skip link first, and step 1's first field close to the top of the tab order."""

import pytest
from playwright.sync_api import Page, expect

from planner.models import Role
from tests.browser.conftest import sign_in
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def focused(page: Page) -> str:
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return (e.getAttribute('name') || e.className || e.tagName) + '|' + e.textContent }"
    )


def test_the_skip_link_then_a_few_tabs_reach_step_1_s_first_field(page: Page, live_server):
    project = ProjectFactory()
    approver = MembershipFactory(project=project, role=Role.APPROVER).user  # sees the sign-off
    sign_in(page, live_server.url, approver)
    page.goto(f"{live_server.url}/projects/{project.pk}/steps/1/")
    expect(page.locator("#signoff")).to_be_visible()

    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    seen = []
    for _ in range(15):
        page.keyboard.press("Tab")
        seen.append(focused(page))
        if seen[-1].startswith("business_objective|"):
            break
    else:
        pytest.fail(f"the first field of step 1 is not within 15 tabs of the content: {seen}")
    # The sign-off decision is collapsed: none of its fields came first.
    assert not any(s.startswith(("decision|", "comment|")) for s in seen), seen
