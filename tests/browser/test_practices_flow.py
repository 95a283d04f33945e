"""Error handling designed on step 2 becomes step-4 test cases in one click; the backfill plan
is verified by a reconciliation run chosen from the project's runs, and step 5 shows it.

At desktop width and at 390 px (a phone), with axe-core on the sections the walk works in: no
serious or critical violation. (The chrome every page shares, header and navigator, is checked
page by page by the every-page walk, not here.)"""

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from planner.checklist.readiness import project_readiness
from planner.models import BackfillPlan, ErrorStrategy, TestCase
from planner.runs import service as validation
from tests.browser.conftest import sign_in
from tests.factories import CLEAN_SOURCE_CSV, CLEAN_TARGET_CSV, csv_connection

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
SERIOUS = ("serious", "critical")
AXE = Axe()


def assert_accessible(page: Page, *sections: str) -> None:
    page.wait_for_load_state("networkidle")
    results = AXE.run(page, context={"include": [[s] for s in sections]})
    violations = [
        f"{v['impact']}: {v['id']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]
    assert not violations, f"{page.url}: {violations}"


@pytest.mark.parametrize("width", WIDTHS)
def test_error_handling_to_generated_cases_to_a_verified_backfill(
    page: Page, live_server, monkeypatch, width
):
    page.set_viewport_size(WIDTHS[width])
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    connection = csv_connection(CLEAN_SOURCE_CSV, CLEAN_TARGET_CSV)
    project = connection.project
    base = f"{live_server.url}/projects/{project.pk}"

    sign_in(page, live_server.url, project.owner)
    page.goto(f"{base}/steps/2/")
    assert_accessible(page, "#error-handling")
    table = page.locator("#errorstrategy-table")
    form = table.locator("form.add-row")
    form.get_by_label("Connection").select_option(label=str(connection))
    form.get_by_role("checkbox", name="Timeout", exact=True).check()
    form.get_by_role("checkbox", name="Rate limited (429)", exact=True).check()
    form.get_by_role("checkbox", name="Validation error", exact=True).check()
    form.get_by_label("Retry attempts").fill("5")
    form.get_by_label("First backoff (s)").fill("2")
    form.get_by_label("Max delay (s)").fill("300")
    form.get_by_label("Failed records go to").select_option(label="Dead-letter queue")
    form.get_by_label("Who is notified").fill("Integrations on-call")
    form.get_by_label("Notified within (min)").fill("15")
    form.get_by_role("button", name="Add error-handling strategy").click()
    expect(table).to_contain_text("timeout, rate limited (429)")
    expect(table).to_contain_text("5× from 2 s, max 300 s")
    assert ErrorStrategy.objects.get(connection=connection).fatal == ["validation"]

    page.goto(f"{base}/steps/4/")
    assert_accessible(page, "#cases", "#backfill")
    expect(page.get_by_test_id("missing-error-cases")).to_contain_text("3 failure classes")
    page.get_by_role("button", name="Add the error-scenario test cases").click()
    expect(page.get_by_role("status").first).to_contain_text("Added 3 error-scenario test cases")
    cases = page.get_by_test_id("testcase-table")
    expect(cases).to_contain_text("validation error (fatal)")
    expect(cases).to_contain_text("Retried 5 times")
    expect(page.get_by_test_id("missing-error-cases")).to_have_count(0)
    assert TestCase.objects.filter(project=project, failure_class="timeout").count() == 1

    # The reconciliation after the backfill (what the worker would run).
    run = validation.start_validation_run(connection, project.owner)
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    assert run.status == "passed"

    # The run exists now: reload so that it is among the verification run's choices.
    page.reload()
    form = page.locator("#backfill-table form.add-row")
    form.get_by_label("Connection").select_option(label=str(connection))
    form.get_by_label("Existing records").fill("48000")
    form.get_by_label("In which order").fill("active customers first")
    form.get_by_label("Throttle (records/min)").fill("600")
    form.get_by_label("Window").fill("Saturday 22:00-06:00")
    form.get_by_label("How it is undone").fill("Delete the rows by batch tag")
    form.get_by_label("Verification run").select_option(value=str(run.pk))
    form.get_by_role("button", name="Add backfill plan").click()
    expect(page.locator("#backfill-table")).to_contain_text(f"run #{run.number} (passed)")
    assert BackfillPlan.objects.get(connection=connection).verification_run_id == run.pk
    step4 = project_readiness(project).for_step(4)
    passing = {o.rule.code for o in step4.outcomes if o.passed}
    assert {"error_cases", "backfill_plans"} <= passing
    assert_accessible(page, "#cases", "#backfill")

    # Step 5, where the backfill is run, says where it stands and links to the run.
    page.goto(f"{base}/steps/5/")
    status = page.locator("#backfill-status")
    expect(status).to_contain_text(f"verified by run #{run.pk} (passed)")
    assert_accessible(page, "#rollout", "#backfill-status")
    status.get_by_role("link", name=f"run #{run.pk}").click()
    expect(page).to_have_url(f"{base}/runs/{run.pk}/")
