"""A new user's first session: create a project, fill step 1, build the inventory, pick a pattern.

Everything goes through the UI as a user would; the assertions are on what the page shows.
"""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    assert_not_reloaded,
    mark_page,
    navigator_state,
    sign_in,
)
from tests.factories import CriterionFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def readiness_percent(page: Page) -> int:
    text = page.get_by_test_id("readiness").locator("strong").inner_text()
    match = re.fullmatch(r"(\d+)%", text.strip())
    assert match, f"readiness shows {text!r}"
    return int(match.group(1))


def add_form(page: Page, kind: str):
    return page.locator(f"#{kind}-table form.add-row")


def test_new_project_step1_inventory_and_pattern(page: Page, live_server):
    user = UserFactory()
    sign_in(page, live_server.url, user)

    # Create the project.
    page.get_by_role("link", name="New project").click()
    page.get_by_label("Name").fill("CRM to billing sync")
    page.get_by_label("Business problem").fill("Statuses disagree between CRM and billing.")
    page.get_by_role("button", name="Create project").click()

    expect(page).to_have_url(re.compile(r"/projects/\d+/steps/1/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        "Step 1. Objectives and success criteria"
    )
    expect(page.get_by_role("status").first).to_contain_text("Created 'CRM to billing sync'")
    step1_url = page.url
    start = readiness_percent(page)
    expect(navigator_state(page, "1. Objectives")).to_have_text("Not started")

    # The business objective saves in place.
    mark_page(page)
    objective = page.locator("#objective-form")
    objective.get_by_label("Business objective").fill("No inactive customer is invoiced.")
    objective.get_by_role("button", name="Save objective").click()
    expect(page.locator("#objective-form .saved-note")).to_have_text("Saved.")
    expect(page.locator("#objective-form").get_by_label("Business objective")).to_have_value(
        "No inactive customer is invoiced."
    )
    expect(navigator_state(page, "1. Objectives")).to_have_text("In progress")
    assert_not_reloaded(page)

    # A success criterion appears as a new row, without a reload.
    table = page.get_by_test_id("criterion-table")
    expect(table).to_contain_text("No success criterion yet.")
    form = add_form(page, "criterion")
    form.locator("[name=add-criterion-metric]").fill("sync latency")
    # End-to-end sync latency is not a figure runs measure: measured outside Aethon.
    form.locator("[name=add-criterion-metric_key]").select_option("external")
    form.locator("[name=add-criterion-comparator]").select_option("<=")
    form.locator("[name=add-criterion-target]").fill("5")
    form.locator("[name=add-criterion-unit]").fill("minutes")
    form.locator("[name=add-criterion-attainment_pct]").fill("99.9")
    form.locator("[name=add-criterion-window_value]").fill("30")
    form.locator("[name=add-criterion-window_unit]").select_option("days")
    form.get_by_role("button", name="Add success criterion").click()

    row = table.locator(".grid-row", has_text="sync latency")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("≤ 5 minutes")
    expect(row).to_contain_text("99.9% over 30 days")
    expect(row).to_contain_text("Measured outside Aethon")
    expect(row.locator(".badge.warn")).to_have_count(0)
    expect(table).not_to_contain_text("No success criterion yet.")
    # The add form came back empty, ready for the next criterion.
    expect(add_form(page, "criterion").locator("[name=add-criterion-metric]")).to_have_value("")
    assert_not_reloaded(page)
    assert page.url == step1_url
    after_step1 = readiness_percent(page)
    assert after_step1 > start, f"readiness stayed at {start}% after step 1 work"

    # The system inventory: three systems through the add form.
    page.locator("#navigator").get_by_role("link", name="System inventory").click()
    expect(page.get_by_role("heading", name="System inventory")).to_be_visible()
    mark_page(page)
    systems = page.get_by_test_id("system-table")
    for name, kind in [("CRM", "crm"), ("Billing", "billing"), ("Support", "support")]:
        form = add_form(page, "system")
        form.locator("[name=add-system-name]").fill(name)
        form.locator("[name=add-system-kind]").select_option(kind)
        form.locator("[name=add-system-owner]").fill("Ops")
        form.get_by_role("button", name="Add system").click()
        expect(systems.locator(".grid-row", has_text=name).first).to_be_visible()
    expect(systems.locator(".grid-row")).to_have_count(3)
    expect(systems).to_contain_text("Billing")
    assert_not_reloaded(page)

    # Step 3 shows what the inventory implies.
    page.locator("#navigator").get_by_role("link", name="3. Integration pattern").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Step 3. Integration pattern")
    expect(page.get_by_test_id("systems-count")).to_have_text("3")
    expect(page.get_by_test_id("p2p-count")).to_have_text("3")
    expect(page.get_by_test_id("hub-count")).to_have_text("3")
    recommendation = page.get_by_test_id("recommendation")
    expect(recommendation).to_contain_text(
        re.compile(r"Recommendation: (Point-to-point|Hub-and-spoke|API gateway)")
    )
    expect(recommendation).to_contain_text("Point-to-point")
    expect(navigator_state(page, "3. Integration pattern")).to_have_text("Not started")

    # The team's decision.
    mark_page(page)
    decision = page.locator("#decision-form")
    decision.get_by_label("Pattern").select_option(label="Point-to-point")
    decision.get_by_label("Rationale").fill("Three systems: a hub would not reduce the count.")
    decision.get_by_role("button", name="Save decision").click()
    expect(page.locator("#decision-form .saved-note")).to_have_text("Saved.")
    # The rules hold; the step completes once an approver signs it off (test_signoff*).
    expect(navigator_state(page, "3. Integration pattern")).to_have_text("Awaiting sign-off")
    assert_not_reloaded(page)
    end = readiness_percent(page)
    assert end > after_step1 > start, f"readiness went {start}% → {after_step1}% → {end}%"

    # A fresh load agrees with what htmx showed.
    page.reload()
    expect(navigator_state(page, "3. Integration pattern")).to_have_text("Awaiting sign-off")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Awaiting sign-off")
    assert readiness_percent(page) == end
    expect(page.locator("#decision-form").get_by_label("Rationale")).to_have_value(
        "Three systems: a hub would not reduce the count."
    )


def test_invalid_criterion_shows_the_field_error_and_keeps_the_input(page: Page, live_server):
    user = UserFactory()
    project = ProjectFactory(owner=user, name="Validation project")
    existing = CriterionFactory(project=project, metric="error rate")
    sign_in(page, live_server.url, user)
    page.get_by_role("link", name="Validation project").click()
    page.locator("#navigator").get_by_role("link", name="1. Objectives").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Step 1.")
    mark_page(page)
    table = page.get_by_test_id("criterion-table")
    expect(table.locator(".grid-row")).to_have_count(1)

    # 150 % is out of the input's range: the browser itself refuses to send it.
    form = add_form(page, "criterion")
    form.locator("[name=add-criterion-metric]").fill("sync latency")
    form.locator("[name=add-criterion-metric_key]").select_option("external")
    form.locator("[name=add-criterion-target]").fill("5")
    form.locator("[name=add-criterion-unit]").fill("minutes")
    form.locator("[name=add-criterion-window_value]").fill("30")
    attainment = form.locator("[name=add-criterion-attainment_pct]")
    attainment.fill("150")
    form.get_by_role("button", name="Add success criterion").click()
    assert attainment.evaluate("el => el.validity.rangeOverflow") is True
    assert "100" in attainment.evaluate("el => el.validationMessage")
    expect(table.locator(".grid-row")).to_have_count(1)
    expect(attainment).to_have_value("150")

    # 0 % passes the browser's check, and the server explains what is wrong with it.
    attainment.fill("0")
    form.get_by_role("button", name="Add success criterion").click()
    form = add_form(page, "criterion")
    error = form.locator(".field.has-error .error")
    expect(error).to_have_text("Attainment %: Attainment is a percentage above 0 and at most 100.")
    expect(form.locator("[name=add-criterion-attainment_pct]")).to_have_value("0")
    expect(form.locator("[name=add-criterion-metric]")).to_have_value("sync latency")
    expect(form.locator("[name=add-criterion-target]")).to_have_value("5")
    expect(form.locator("[name=add-criterion-unit]")).to_have_value("minutes")
    expect(form.locator("[name=add-criterion-window_value]")).to_have_value("30")
    expect(table.locator(".grid-row")).to_have_count(1)

    # The same rule on an inline edit of an existing row.
    table.get_by_role("link", name=re.compile(r"^Edit error rate")).click()
    editing = page.locator(f"tr#criterion-{existing.pk}.editing form")
    field = editing.locator(f"[name=criterion-{existing.pk}-attainment_pct]")
    field.fill("0")
    editing.get_by_role("button", name="Save").click()
    expect(editing.locator(".field.has-error .error")).to_have_text(
        "Attainment %: Attainment is a percentage above 0 and at most 100."
    )
    expect(field).to_have_value("0")
    expect(editing.locator(f"[name=criterion-{existing.pk}-metric]")).to_have_value("error rate")
    assert_not_reloaded(page)
    existing.refresh_from_db()
    assert existing.attainment_pct == Decimal("99.9")
