"""A criterion's service-level page in the browser, at desktop and phone width: the plots are
drawn, named for assistive technology (role img, title and description), fit the screen, and
their figures can be read as a table."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in
from tests.service_levels import fresh, series

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.mark.parametrize("width", WIDTHS)
def test_the_criterion_page_shows_its_plots(page: Page, live_server, width):
    page.set_viewport_size(WIDTHS[width])
    c = fresh()
    now = timezone.now()
    series(c, now - timedelta(days=30) + timedelta(hours=1), 30 * 24, step=timedelta(hours=1),
           good=9990, total=10_000, lag_p50=30.0, lag_p95=100.0, lag_p99=200.0, late_now=2)  # fmt: skip
    sign_in(page, live_server.url, c.project.owner)
    page.goto(f"{live_server.url}/projects/{c.project_id}/steps/1/")
    page.get_by_test_id("service-level-links").get_by_role("link", name=c.metric).click()
    expect(page.get_by_role("heading", name=c.metric)).to_be_visible()
    expect(page.get_by_test_id("slo-state")).to_have_text("Met")
    for kind, name in (
        ("compliance", "Compliance of"),
        ("budget", "Error budget of"),
        ("lag", "Propagation lag of"),
        ("late", "Late records of"),
    ):
        plot = page.get_by_test_id(f"plot-criterion-{c.pk}-{kind}")
        expect(plot).to_be_visible()
        expect(page.get_by_role("img", name=name)).to_be_visible()
        box = plot.bounding_box()
        assert box["width"] <= WIDTHS[width]["width"], f"{kind} plot wider than the screen"
        assert plot.locator("polyline, rect").count() > 1
    # The text alternative opens as a table of the same figures.
    page.get_by_text("the figures as a table").first.click()
    expect(page.get_by_role("table", name=f"Compliance of '{c.metric}' over time")).to_be_visible()
    expect(page.get_by_test_id("burn-rules")).to_contain_text("both > 14.4")
