"""Error handling designed on step 2 becomes step-4 test cases in one click; the backfill plan
is verified by a reconciliation run chosen from the project's runs."""

import pytest
from playwright.sync_api import Page, expect

from planner.checklist.readiness import project_readiness
from planner.models import BackfillPlan, ErrorStrategy, TestCase
from planner.runs import service as validation
from tests.browser.conftest import sign_in
from tests.factories import CLEAN_SOURCE_CSV, CLEAN_TARGET_CSV, csv_connection

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def test_error_handling_to_generated_cases_to_a_verified_backfill(
    page: Page, live_server, monkeypatch
):
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    connection = csv_connection(CLEAN_SOURCE_CSV, CLEAN_TARGET_CSV)
    project = connection.project
    base = f"{live_server.url}/projects/{project.pk}"

    sign_in(page, live_server.url, project.owner)
    page.goto(f"{base}/steps/2/")
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
