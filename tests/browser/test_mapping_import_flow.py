"""Importing a spreadsheet kept by a person: an unknown value is matched in the preview, once,
then the rows are imported exactly; a paste goes through the same preview."""

import pytest
from playwright.sync_api import Page, expect

from planner.models import FieldMapping, ValueMeaning
from tests.browser.conftest import sign_in
from tests.factories import ConnectionFactory, ProjectFactory, SystemFactory

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def test_an_unknown_value_is_matched_in_the_preview_then_imported(
    page: Page, live_server, tmp_path
):
    project = ProjectFactory()
    crm = SystemFactory(project=project, name="Sales CRM")
    billing = SystemFactory(project=project, name="Billing")
    connection = ConnectionFactory(project=project, source=crm, target=billing)
    sign_in(page, live_server.url, project.owner)
    sheet = tmp_path / "pm.csv"
    sheet.write_text(
        "Source System,Target System,Source field,Target field,Target type,Sync frequency,Notes\n"
        'sales crm,Billing,Email,email,varchar(80),every 5 minutes,"  as typed  "\n'
        "Sales CRM,billing,Plan,plan,text,every fortnight,\n"
        "Sales CRM,Billing,Tier,tier,text,Every Fortnight,\n"
    )
    page.goto(
        f"{live_server.url}/projects/{project.pk}/steps/2/connections/{connection.pk}/import/"
    )
    page.get_by_label("Spreadsheet").set_input_files(str(sheet))
    page.get_by_role("button", name="Upload and preview").click()

    matching = page.get_by_test_id("value-matching")
    expect(matching.locator("tbody tr")).to_have_count(1)  # one distinct unknown value
    expect(matching).to_contain_text("every fortnight")
    expect(matching).to_contain_text("3, 4")
    page.get_by_label("Meaning of every fortnight in Sync frequency").select_option("weekly")
    page.get_by_role("button", name="Import 3 rows").click()

    expect(page.get_by_text("Imported 3 rows from pm.csv")).to_be_visible()
    rows = {m.target_field: m for m in FieldMapping.objects.filter(connection=connection)}
    assert (rows["email"].every_minutes, rows["email"].max_length) == (5, 80)
    assert rows["email"].notes == "  as typed  "
    assert rows["plan"].every_minutes == rows["tier"].every_minutes == 7 * 24 * 60
    assert ValueMeaning.objects.get(project=project).meaning == "weekly"

    # Pasted rows (no header) take the same preview; the remembered meaning applies.
    page.goto(
        f"{live_server.url}/projects/{project.pk}/steps/2/connections/{connection.pk}/import/"
    )
    page.get_by_label("or paste rows").fill(
        "Region\tstring\tregion\tstring\t\tno\tskip\t\ttrim\tboth\tevery fortnight\n"
    )
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_test_id("value-matching")).to_have_count(0)
    page.get_by_role("button", name="Import 1 row").click()
    expect(page.get_by_text("Imported 1 row from pasted.tsv")).to_be_visible()
    region = FieldMapping.objects.get(target_field="region")
    assert (region.direction, region.every_minutes) == ("bidirectional", 7 * 24 * 60)
