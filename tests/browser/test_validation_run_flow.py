"""Configure two systems as file uploads, test them, run a validation, watch it, read results.

The run executes in the test thread (what the Celery worker would do), slowed a little so the
page's 1-second polling sees it running; the page records every state it showed.
"""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from planner.models import ValidationRun
from planner.runs import service as validation
from tests.browser.conftest import sign_in
from tests.factories import (
    ConnectionFactory,
    ProjectFactory,
    SystemFactory,
    UserFactory,
    id_and_email_mapping,
)

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

ROWS = 150
SOURCE = "id,email\n" + "".join(f"{i},Customer{i}@Example.com \n" for i in range(1, ROWS + 1))
# The target lacks customer 7, has an extra 999, and one address differs.
TARGET = (
    "id,email\n"
    + "".join(
        f"{i},{'old' if i == 3 else 'customer'}{i}@example.com\n"
        for i in range(1, ROWS + 1)
        if i != 7
    )
    + "999,ghost@example.com\n"
)

# Every state the run's live region shows, recorded in the page as it changes.
RECORD_STATES = """() => {
  window.__states = [];
  const note = () => {
    const live = document.querySelector('#run-live');
    if (!live) return;
    const text = (live.querySelector('[data-testid=run-progress]') || {}).textContent || '';
    window.__states.push(live.dataset.status + ' ' + text.replace(/\\s+/g, ' ').trim());
  };
  note();
  new MutationObserver(note).observe(document.body, {childList: true, subtree: true});
}"""


def configure(page: Page, system_name: str, filename: str, content: str) -> None:
    page.get_by_test_id("systems-table").locator("tr", has_text=system_name).get_by_role(
        "link", name="Configure"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Connection settings of {system_name}"
    )
    form = page.locator("#endpoint-form")
    form.locator("[name=kind]").select_option("file")
    # Only the fields of the chosen kind are shown.
    expect(form.locator("[name=host]")).to_be_hidden()
    expect(form.locator("[name=base_url]")).to_be_hidden()
    expect(form.locator("[name=delimiter]")).to_be_visible()
    form.locator("[name=key_fields]").fill("id")
    form.locator("[name=upload]").set_input_files(
        {"name": filename, "mimeType": "text/csv", "buffer": content.encode()}
    )
    form.get_by_role("button", name="Test connection").click()
    result = page.get_by_test_id("test-result")
    expect(result).to_contain_text("✓ Connected")
    expect(result).to_contain_text("2 fields seen: id, email")
    expect(result).to_contain_text("Every field the mappings use is there.")
    form.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").first).to_contain_text(
        f"Saved the connection settings of {system_name}"
    )
    expect(page.get_by_test_id("endpoint-status")).to_contain_text(filename)
    # Testing the saved settings (the stored file) is remembered.
    page.locator("#endpoint-form").get_by_role("button", name="Test connection").click()
    expect(page.get_by_test_id("test-result")).to_contain_text("✓ Connected")
    page.get_by_role("link", name="Validation runs").first.click()


def test_configure_two_systems_run_a_validation_and_see_the_results(
    page: Page, live_server, monkeypatch, settings
):
    user = UserFactory()
    project = ProjectFactory(owner=user, name="CRM to billing")
    crm = SystemFactory(project=project, name="CRM")
    billing = SystemFactory(project=project, name="Billing")
    connection = ConnectionFactory(project=project, source=crm, target=billing)
    id_and_email_mapping(connection)
    queued: list[int] = []
    monkeypatch.setattr(validation, "dispatch", lambda run: queued.append(run.pk))

    sign_in(page, live_server.url, user)
    page.get_by_role("link", name="CRM to billing").click()
    page.locator("#navigator").get_by_role("link", name="Validation runs").click()
    expect(page.get_by_role("heading", name="Validation runs", level=1)).to_be_visible()
    expect(page.get_by_test_id("systems-table")).to_contain_text("not configured")

    configure(page, "CRM", "crm.csv", SOURCE)
    configure(page, "Billing", "billing.csv", TARGET)
    systems = page.get_by_test_id("systems-table")
    expect(systems.locator("tr", has_text="CRM")).to_contain_text("CSV / JSON / XLSX file")
    expect(systems.locator("tr", has_text="Billing")).to_contain_text("OK")
    expect(systems.locator("tr", has_text="CRM")).to_contain_text("OK")

    # Start the run: it is queued, and the page polls for progress.
    page.get_by_test_id(f"connection-{connection.pk}").get_by_role(
        "button", name="Run validation"
    ).click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.get_by_test_id("run-status")).to_have_text("Queued")
    expect(page.locator("#run-live")).to_have_attribute("hx-trigger", "every 1s")
    page.evaluate(RECORD_STATES)
    (run_id,) = queued

    # The worker's part, slowed so that polls land while it runs: small chunks (files are
    # read in key order through disk, in chunks) and a pause at each.
    monkeypatch.setattr(validation, "FETCH_BATCH", 25)
    settings.AETHON_RUN_CHUNK_ROWS = 25
    real_progress = validation.Runner.progress

    def slow_progress(self, n=0, force=False):
        # Every call, rows or not: a side sorted through disk reports its rows once, then
        # the merge reports each chunk (its rows already counted) with 0.
        time.sleep(0.1)
        return real_progress(self, n, force)

    monkeypatch.setattr(validation.Runner, "progress", slow_progress)
    validation.execute_run(run_id, heartbeat=False)

    expect(page.get_by_test_id("run-status")).to_have_text("Failed", timeout=15_000)
    expect(page.locator("#run-live")).not_to_have_attribute("hx-trigger", re.compile(".*"))
    states = page.evaluate("window.__states")
    running = [s for s in states if s.startswith("running")]
    assert running, states
    assert any(re.search(r"\d+ (of 299 )?records read", s) for s in running), running

    # The results, stage by stage.
    for name in ("connectivity", "schema", "mapping"):
        expect(page.get_by_test_id(f"stage-{name}").locator("header .status")).to_have_text(
            "Passed"
        )
    rec = page.get_by_test_id("stage-reconciliation")
    expect(rec.locator("header .status")).to_have_text("Failed")
    expect(rec).to_contain_text("1 missing in target; 1 extra in target; 1 with differing fields")
    examples = page.get_by_test_id("mismatch-examples")
    expect(examples).to_contain_text("customer3@example.com")
    expect(examples).to_contain_text("old3@example.com")
    expect(rec).to_contain_text("Missing in target (first 1): 7")
    expect(rec).to_contain_text("Extra in target (first 1): 999")

    with page.expect_download() as download:
        page.get_by_test_id("differences-download").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "status,id,field,source_value,target_value"
    assert len(lines) == 4

    # The runs list shows it, with its figures.
    page.get_by_role("link", name="Validation runs").first.click()
    number = ValidationRun.objects.get(pk=run_id).number  # counted per project
    row = page.get_by_test_id("runs-table").locator("tr", has_text=f"#{number}")
    expect(row).to_contain_text("Failed")
    expect(row).to_contain_text(str(ROWS))
    assert ValidationRun.objects.get(pk=run_id).summary["missing"] == 1
