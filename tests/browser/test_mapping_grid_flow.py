"""Step 2's grid in the browser, at desktop and phone width: paste a block copied from a
spreadsheet (it goes through the import preview), edit cells with the keyboard, cancel with
Escape, keep the header in view, never break a word, and export what was typed."""

import csv
import io

import pytest
from playwright.sync_api import Page, expect

from planner.models import FieldMapping
from tests.browser.conftest import sign_in
from tests.factories import ConnectionFactory, FieldMappingFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}


def paste(page: Page, cell, text: str) -> None:
    """What Ctrl+V of a copied block delivers: a paste event with the text/plain flavour."""
    cell.focus()
    cell.evaluate(
        """(el, text) => {
            const data = new DataTransfer();
            data.setData("text/plain", text);
            el.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true,
                                                          cancelable: true}));
        }""",
        text,
    )


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_grid_paste_keyboard_edit_and_export(page: Page, live_server, tmp_path, viewport):
    width, height = VIEWPORTS[viewport]
    page.set_viewport_size({"width": width, "height": height})
    project = ProjectFactory(name="CRM to billing")
    connection = ConnectionFactory(project=project)
    first = FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="CustomerLifetimeValueInEuros__c",
        target_field="lifetime_value",
        notes="Agreed with finance during the workshop",
    )
    FieldMappingFactory.create_batch(29, project=project, connection=connection)
    sign_in(page, live_server.url, project.owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/steps/2/connections/{connection.pk}/")
    grid = page.get_by_role("grid")
    rows = grid.locator("tbody tr.mapping-row")
    expect(rows).to_have_count(30)

    # A screen reader finds a real table: column headers, and rows named by their source field.
    expect(grid.get_by_role("columnheader", name="Transformation")).to_be_visible()
    expect(grid.get_by_role("rowheader", name="CustomerLifetimeValueInEuros__c")).to_be_visible()

    # Words never break inside: every cell is as wide as its longest word.
    broken = page.evaluate(
        """() => Array.from(document.querySelectorAll('#mapping-grid th, #mapping-grid td'))
            .filter((c) => {
              const s = getComputedStyle(c);
              return s.wordBreak === 'break-all' || s.overflowWrap !== 'normal'
                || c.scrollWidth > c.clientWidth + 1;
            }).map((c) => c.textContent.trim().slice(0, 40))"""
    )
    assert broken == []

    # The header stays visible while the rows scroll under it.
    scroller = page.get_by_test_id("mapping-grid-scroll")
    scroller.evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    header = grid.get_by_role("columnheader", name="Target field")
    box, frame = header.bounding_box(), scroller.bounding_box()
    assert scroller.evaluate("(el) => el.scrollTop") > 0
    assert abs(box["y"] - frame["y"]) <= 2, (box, frame)
    scroller.evaluate("(el) => { el.scrollTop = 0; }")

    # Keyboard: Enter edits the focused cell, typing replaces it, Tab saves and moves right.
    target = rows.first.locator('[data-field="target_field"]')
    target.focus()
    page.keyboard.press("Enter")
    editor = target.locator("input")
    expect(editor).to_be_focused()
    page.keyboard.type("customer_ltv")
    page.keyboard.press("Tab")
    expect(rows.first.locator('[data-field="target_field"]')).to_have_text("customer_ltv")
    expect(rows.first.locator('[data-field="target_type"]')).to_be_focused()
    first.refresh_from_db()
    assert (first.target_field, first.version) == ("customer_ltv", 2)
    expect(page.get_by_test_id("mapping-grid-live")).to_contain_text("Saved Target field")

    # Escape cancels: the cell shows its value again and nothing is saved.
    notes = rows.first.locator('[data-field="notes"]')
    notes.click()
    expect(notes.locator("textarea")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("scribble")
    page.keyboard.press("Escape")
    expect(notes).to_have_text("Agreed with finance during the workshop")
    expect(notes).to_be_focused()
    first.refresh_from_db()
    assert first.notes == "Agreed with finance during the workshop" and first.version == 2

    # The form's checks apply to a cell: a bad rule is refused, the input kept for fixing.
    rule = rows.first.locator('[data-field="rule"]')
    rule.focus()
    page.keyboard.press("Enter")
    page.keyboard.type("trim | lowr")
    page.keyboard.press("Enter")
    expect(rule.locator(".cell-error")).to_contain_text("unknown transform 'lowr'")
    expect(rule.locator("input")).to_have_value("trim | lowr")
    page.keyboard.press("Escape")
    first.refresh_from_db()
    assert first.rule == "trim"

    # Paste rows copied from a spreadsheet with their header: they arrive in the import preview,
    # nothing saved yet; a value the importer does not know is matched there, once.
    block = (
        "Source field\tSource type\tTarget field\tTarget type\tSync frequency\n"
        "Phone\tstring\tphone_number\tstring\tevery fortnight\n"
        "Fax\tstring\tfax_number\tstring\tevery fortnight\n"
    )
    paste(page, rows.nth(1).locator('[data-field="source_field"]'), block)
    expect(page.get_by_role("heading", name="pasted-rows.tsv: 2 rows")).to_be_visible()
    assert FieldMapping.objects.filter(connection=connection).count() == 30
    matching = page.get_by_test_id("value-matching")
    expect(matching.locator("tbody tr")).to_have_count(1)  # one distinct unknown value
    page.get_by_label("Meaning of every fortnight in Sync frequency").select_option("weekly")
    page.get_by_role("button", name="Import 2 rows").click()
    expect(page.locator(".messages")).to_contain_text("Imported 2 rows from pasted-rows.tsv")
    expect(rows).to_have_count(32)
    added = FieldMapping.objects.get(connection=connection, target_field="phone_number")
    assert (added.source_field, added.source_type, added.target_type) == (
        "Phone",
        "string",
        "string",
    )
    assert added.every_minutes == 7 * 24 * 60  # "weekly", as chosen in the preview

    # Export: the file holds what was typed in the grid and what was pasted.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = tmp_path / "mapping.csv"
    download.value.save_as(exported)
    records = list(csv.DictReader(io.StringIO(exported.read_text(encoding="utf-8-sig"))))
    targets = [r["Target field"] for r in records]
    assert targets[0] == "customer_ltv" and targets[-2:] == ["phone_number", "fax_number"]


def test_a_block_with_its_header_pastes_into_an_empty_mapping(page: Page, live_server):
    project = ProjectFactory()
    connection = ConnectionFactory(project=project)
    sign_in(page, live_server.url, project.owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/steps/2/connections/{connection.pk}/")
    header = page.get_by_role("grid").get_by_role("columnheader", name="Source field")
    expect(header).to_have_attribute("tabindex", "0")  # with no rows, the grid's tab stop
    block = (
        "Target\tSource\tTransformation\tNotes\r\n"
        'email\tEmail\ttrim | lower\t"  spaces kept,\r\nand a line break "\r\n'
    )
    paste(page, header, block)
    expect(page.get_by_role("heading", name="pasted-rows.tsv: 1 row")).to_be_visible()
    page.get_by_role("button", name="Import 1 row").click()
    expect(page.locator(".messages")).to_contain_text("Imported 1 row from pasted-rows.tsv")
    row = FieldMapping.objects.get(connection=connection)
    assert (row.source_field, row.target_field, row.rule) == ("Email", "email", "trim | lower")
    assert row.notes == "  spaces kept,\nand a line break "
    notes = page.locator('#mapping-rows [data-field="notes"]')
    expect(notes).to_have_attribute("data-value", "  spaces kept,\nand a line break ")
