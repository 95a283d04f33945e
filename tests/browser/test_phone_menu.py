"""The project navigator: beside the page on a desktop, a menu opened by keyboard on a phone."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in
from tests.factories import ConnectionFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

SIDEWAYS = "document.documentElement.scrollWidth - window.innerWidth"


def test_on_a_phone_the_navigator_is_a_menu_that_opens_by_keyboard(page: Page, live_server):
    project = ProjectFactory(name="CRM to billing")
    ConnectionFactory(project=project)
    sign_in(page, live_server.url, project.owner)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/projects/{project.pk}/steps/1/")
    menu = page.locator("details.nav-menu > summary")
    steps = page.get_by_role("navigation", name="Project steps")
    expect(menu).to_be_visible()
    expect(steps).to_be_hidden()
    assert page.evaluate(SIDEWAYS) <= 0
    menu.focus()
    page.keyboard.press("Enter")
    expect(steps.get_by_role("link", name="Validation runs")).to_be_visible()
    page.keyboard.press("Enter")
    expect(steps).to_be_hidden()

    # Widened to a desktop, the navigator sits beside the page and the menu button goes.
    page.set_viewport_size({"width": 1280, "height": 900})
    expect(steps).to_be_visible()
    expect(menu).to_be_hidden()
    box, main = steps.bounding_box(), page.locator(".workspace > main").bounding_box()
    assert box["x"] + box["width"] <= main["x"]  # side by side, not stacked
    assert box["y"] <= main["y"] + 1  # at the top, not centred on a long page
