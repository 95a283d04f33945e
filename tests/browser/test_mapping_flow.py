"""Step 2 in the browser: write rules with live checks, try them on samples, reorder, filter,
export, and import a spreadsheet back — without reloading the editor."""

import re

import pytest
from playwright.sync_api import Page, expect

from planner.models import FieldMapping
from tests.browser.conftest import assert_not_reloaded, mark_page, sign_in
from tests.factories import ConnectionFactory, FieldMappingFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def test_mapping_editor_flow(page: Page, live_server, tmp_path):
    project = ProjectFactory(name="CRM to billing")
    ConnectionFactory(project=project)
    sign_in(page, live_server.url, project.owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/steps/2/")
    page.get_by_role("link", name="Open mapping").click()
    expect(page.get_by_test_id("mapping-status")).to_contain_text("none yet")
    mark_page(page)

    form = page.locator("#mapping-add-form")
    form.get_by_label("Source field").fill("Status__c")
    form.get_by_label("Source type").select_option("string")
    form.get_by_label("Target field").fill("status_code")
    form.get_by_label("Target type").select_option("integer")
    form.get_by_label("Null rule").select_option("reject")
    rule = form.locator("input.rule-input")
    rule.fill("trim | lowr")
    check = form.locator(".rule-check")
    expect(check.locator("mark")).to_have_text("lowr")
    expect(check).to_contain_text("did you mean 'lower'")
    rule.fill("trim | lower | map(active=1, inactive=0)")
    expect(check).to_contain_text("valid — produces integer")
    form.get_by_role("button", name="Add mapping row").click()

    rows = page.locator("#mapping-rows .mapping-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("status_code")
    expect(form.get_by_label("Source field")).to_have_value("")
    expect(page.get_by_test_id("mapping-status")).to_contain_text("1 row")

    # A second row, with a problem flagged on it (max length without a length check).
    form.get_by_label("Source field").fill("Email")
    form.get_by_label("Source type").select_option("string")
    form.get_by_label("Target field").fill("email")
    form.get_by_label("Target type").select_option("string")
    form.get_by_label("Target max length").fill("80")
    form.get_by_label("Null rule").select_option("reject")
    rule.fill("trim | lower")
    form.get_by_role("button", name="Add mapping row").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("add max_length(80)")
    expect(page.get_by_test_id("mapping-status")).to_contain_text("1 with problems")

    # Move the email row up; the page reorders it in place.
    page.get_by_role("button", name="Move Email → email up").click()
    expect(rows.first).to_contain_text("email")

    # Instant filter.
    page.get_by_label("Filter rows").fill("status")
    expect(page.locator("#mapping-rows .mapping-row:not(.hidden)")).to_have_count(1)
    page.get_by_label("Filter rows").fill("")
    page.get_by_label("Problems only").check()
    expect(page.locator("#mapping-rows .mapping-row:not(.hidden)")).to_have_count(1)
    page.get_by_label("Problems only").uncheck()

    # Try the mapping on pasted samples.
    page.get_by_label("Sample records").fill(
        "id,Status__c,Email\n1,Active,ADA@x.com\n2,pending,b@y\n"
    )
    page.get_by_label("Key field (optional)").fill("id")
    page.get_by_role("button", name="Run on samples").click()
    result = page.get_by_test_id("try-result")
    expect(result).to_contain_text("2 records")
    expect(result.locator("td.violation")).to_have_text(re.compile("pending"))
    expect(result).to_contain_text("ada@x.com")
    assert_not_reloaded(page)

    # Export, then import the file back as a replacement: the mapping is unchanged.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = tmp_path / "mapping.csv"
    download.value.save_as(exported)
    before = list(FieldMapping.objects.values_list("source_field", "target_field", "rule"))
    page.get_by_role("link", name="Import CSV / XLSX").click()
    page.get_by_label("Spreadsheet").set_input_files(str(exported))
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_role("heading", name=re.compile("2 rows"))).to_be_visible()
    page.get_by_label("replace the whole mapping").check()
    page.get_by_role("button", name="Import 2 rows").click()
    expect(page.locator(".messages")).to_contain_text("Imported 2 rows")
    after = list(FieldMapping.objects.values_list("source_field", "target_field", "rule"))
    assert after == before


def test_import_errors_are_shown_and_nothing_is_saved(page: Page, live_server, tmp_path):
    project = ProjectFactory()
    connection = ConnectionFactory(project=project)
    FieldMappingFactory(project=project, connection=connection, target_field="email")
    sign_in(page, live_server.url, project.owner)
    bad = tmp_path / "bad.csv"
    bad.write_text("Source field,Target field,Transformation\nEmail,email,trim\nX,y,upper(\n")
    page.goto(
        f"{live_server.url}/projects/{project.pk}/steps/2/connections/{connection.pk}/import/"
    )
    page.get_by_label("Spreadsheet").set_input_files(str(bad))
    page.get_by_role("button", name="Upload and preview").click()
    page.get_by_role("button", name="Import 2 rows").click()
    problems = page.get_by_test_id("import-problems")
    expect(problems).to_contain_text("nothing was imported")
    expect(problems).to_contain_text("row 2, column 'Target field': 'email' is already mapped")
    expect(problems).to_contain_text("row 3, column 'Transformation'")
    assert FieldMapping.objects.filter(connection=connection).count() == 1


def test_changing_a_type_reruns_the_live_rule_check_without_htmx_errors(page: Page, live_server):
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    project = ProjectFactory(name="CRM to billing")
    ConnectionFactory(project=project)
    sign_in(page, live_server.url, project.owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/steps/2/")
    page.get_by_role("link", name="Open mapping").click()
    form = page.locator("#mapping-add-form")
    form.get_by_label("Target type").select_option("integer")
    form.locator("input.rule-input").fill("trim | lower | map(active=1, inactive=0)")
    check = form.locator(".rule-check")
    expect(check).to_contain_text("valid — produces integer")
    # Only the type changes: the check runs again and now refuses the rule for a date target.
    form.get_by_label("Target type").select_option("date")
    expect(check).not_to_contain_text("valid")
    expect(check.locator(".error")).to_be_visible()
    form.get_by_label("Target type").select_option("integer")
    expect(check).to_contain_text("valid — produces integer")
    assert not errors, errors
