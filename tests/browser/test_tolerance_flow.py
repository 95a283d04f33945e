"""A mapping row's tolerance in the browser: refused with the reason, then saved and shown."""

import pytest
from playwright.sync_api import Page, expect

from planner.models import FieldMapping
from tests.browser.conftest import assert_not_reloaded, mark_page, sign_in
from tests.factories import ConnectionFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def test_a_tolerance_is_stated_on_a_mapping_row(page: Page, live_server):
    project = ProjectFactory(name="Ledger to warehouse")
    connection = ConnectionFactory(project=project)
    sign_in(page, live_server.url, project.owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/steps/2/connections/{connection.pk}/")
    mark_page(page)

    form = page.locator("#mapping-add-form")
    form.get_by_label("Source field").fill("Amount__c")
    form.get_by_label("Source type").select_option("decimal")
    form.get_by_label("Target field").fill("amount")
    form.get_by_label("Target type").select_option("decimal")
    form.get_by_label("Null rule").select_option("skip")
    form.locator("input.rule-input").fill("identity")
    form.get_by_label("Tolerance").fill("1s")
    form.get_by_role("button", name="Add mapping row").click()
    expect(form).to_contain_text(
        "Tolerance: A duration tolerance needs a date or datetime target type."
    )
    assert not FieldMapping.objects.exists()

    form.get_by_label("Tolerance").fill("0.000001")
    form.get_by_role("button", name="Add mapping row").click()
    rows = page.locator("#mapping-rows .mapping-row")
    expect(rows).to_have_count(1)
    expect(rows.first.locator('[data-field="tolerance"]')).to_have_text("0.000001")
    assert_not_reloaded(page)
    assert FieldMapping.objects.get().tolerance == "0.000001"
