"""Steps 4 to 7 filled through the UI, a sign-off going stale after an edit, the PDF export.

The owner fills each step minimally; an approver, in a second browser, signs step 7 off; the
owner edits the incident runbook and both see the sign-off go stale; the owner exports the
runbook and the PDF's text names the stale sign-off.
"""

import re
import shutil
import subprocess

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from planner.models import Role, RollbackTrigger, SignOffStale, SuccessCriterion
from tests.browser.conftest import (
    assert_not_reloaded,
    mark_page,
    navigator_state,
    sign_in,
)
from tests.factories import (
    CriterionFactory,
    MembershipFactory,
    ObjectiveFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def open_step(page: Page, number: int, title: str) -> None:
    page.locator("#navigator").get_by_role("link", name=f"{number}. {title}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Step {number}. {title}")


def add_row(page: Page, kind: str, fields: dict[str, str], button: str) -> None:
    form = page.locator(f"#{kind}-table form.add-row")
    for name, value in fields.items():
        field = form.locator(f"[name=add-{kind}-{name}]")
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    form.get_by_role("button", name=button).click()


def test_fill_steps_4_to_7_sign_off_edit_stale_export(
    page: Page, browser, live_server, tmp_path, celery_eager
):
    owner = UserFactory()
    project = ProjectFactory(owner=owner, name="Sign-off flow")
    ObjectiveFactory(project=project)
    # Measured by runs (a catalogue figure), so step 6 offers its monitor in one click.
    CriterionFactory(project=project, metric="mismatch rate", comparator="<=", target=1, unit="%")
    approver = MembershipFactory(
        project=project, role=Role.APPROVER, user__email="approver@example.com"
    ).user

    sign_in(page, live_server.url, owner)
    page.get_by_role("link", name="Sign-off flow").click()

    # Step 4: one test case, with an evidence file uploaded through htmx.
    open_step(page, 4, "Incremental test plan")
    mark_page(page)
    evidence = tmp_path / "connect.log"
    evidence.write_text("GET /health 200\n")
    page.locator("[name=add-testcase-evidence_file]").set_input_files(str(evidence))
    add_row(
        page,
        "testcase",
        {
            "stage": "1",
            "description": "Connect to billing",
            "pass_criterion": "HTTP 200",
            "status": "passed",
        },
        "Add test case",
    )
    row = page.get_by_test_id("testcase-table").locator(".grid-row", has_text="Connect to billing")
    expect(row.get_by_role("link", name="connect.log")).to_be_visible()
    expect(page.get_by_test_id("stage-ladder")).to_contain_text("1 of 1 passed")
    expect(navigator_state(page, "4. Incremental test plan")).to_have_text("In progress")
    assert_not_reloaded(page)

    # Step 5: a trigger, a rollback step and a recorded rehearsal.
    open_step(page, 5, "Deployment and rollback")
    add_row(
        page,
        "trigger",
        {"metric": "error rate", "threshold": "5", "unit": "%", "window_value": "15"},
        "Add rollback trigger",
    )
    add_row(
        page,
        "rollbackstep",
        {"action": "Turn the flag off", "owner": "Ops", "expected_minutes": "5"},
        "Add rollback step",
    )
    expect(page.get_by_test_id("rollbackstep-table")).to_contain_text("5 min")
    # A pilot phase, promoted on the step-1 criterion and ended by the trigger above (the
    # phase form lists the triggers the page was loaded with: reload to see the new one).
    page.reload()
    add_row(
        page,
        "rolloutphase",
        {
            "audience": "Pilot: finance team",
            "blast_radius": "pilot invoices",
            "promote_on_criterion": str(SuccessCriterion.objects.get(project=project).pk),
            "rollback_trigger": str(RollbackTrigger.objects.get(project=project).pk),
        },
        "Add rollout phase",
    )
    expect(page.get_by_test_id("rolloutphase-table")).to_contain_text("Pilot: finance team")
    form = page.locator("#deployment-form")
    form.get_by_label("Rollback rehearsed on").fill("2026-11-20")
    form.get_by_label("Rehearsal result").select_option("succeeded")
    form.get_by_role("button", name="Save deployment plan").click()
    expect(page.locator("#deployment-form .saved-note")).to_have_text("Saved.")
    expect(navigator_state(page, "5. Deployment and rollback")).to_have_text("Awaiting sign-off")

    # Step 6: a monitor for the step-1 criterion in one click, and a connectivity check.
    open_step(page, 6, "Monitoring")
    page.get_by_test_id("criteria-coverage").get_by_role(
        "button", name="Add a monitor for it"
    ).click()
    expect(page.get_by_test_id("monitor-table")).to_contain_text("mismatch rate")
    expect(page.get_by_test_id("criteria-coverage")).to_contain_text("monitored by mismatch rate")
    add_row(
        page,
        "monitor",
        {
            "kind": "connectivity",
            "name": "API reachable",
            "threshold": "0",
            "window_value": "5",
            "alert_route": "PagerDuty",
        },
        "Add monitor",
    )
    expect(page.get_by_test_id("monitor-table")).to_contain_text("API reachable")

    # Step 7: guide, channel, schedule and one incident: its rules all pass.
    open_step(page, 7, "Training and feedback")
    form = page.locator("#training-form")
    form.get_by_label("User guide").fill("https://wiki.example.com/sync")
    form.get_by_label("Feedback channel").fill("#sync")
    form.get_by_role("button", name="Save training plan").click()
    expect(page.locator("#training-form .saved-note")).to_have_text("Saved.")
    add_row(
        page,
        "incident",
        {
            "symptom": "Nothing syncs",
            "to_check": "Queue depth",
            "fix": "Restart the worker",
            "escalation": "On-call",
        },
        "Add incident",
    )
    expect(navigator_state(page, "7. Training and feedback")).to_have_text("Awaiting sign-off")
    # The owner may sign as owner, but step 7 needs an approver's sign-off.
    expect(page.get_by_test_id("signoff")).to_contain_text("Needs an approver")

    # The approver, in a second browser, signs step 7 off.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    other = context.new_page()
    try:
        sign_in(other, live_server.url, approver)
        other.get_by_role("link", name="Sign-off flow").click()
        open_step(other, 7, "Training and feedback")
        panel = other.get_by_test_id("signoff")
        panel.locator("summary").click()
        panel.get_by_label("Approve").check()
        panel.get_by_label("Comment").fill("Runbook entries look right.")
        panel.get_by_role("button", name="Record sign-off").click()
        expect(other.get_by_test_id("signoff")).to_contain_text("fresh")
        expect(navigator_state(other, "7. Training and feedback")).to_have_text("Complete")

        # The owner edits the incident: the sign-off goes stale, on the step and navigator.
        page.reload()
        expect(navigator_state(page, "7. Training and feedback")).to_have_text("Complete")
        mark_page(page)
        table = page.get_by_test_id("incident-table")
        table.get_by_role("link", name=re.compile(r"^Edit Nothing syncs")).click()
        editing = page.locator("tr.editing form")
        editing.locator("input[name$=-fix]").fill("Restart the worker, then replay the queue")
        editing.get_by_role("button", name="Save").click()
        expect(table).to_contain_text("then replay the queue")
        expect(page.get_by_test_id("signoff-stale")).to_be_visible()
        expect(page.get_by_test_id("stale-signoff-7")).to_be_visible()
        expect(navigator_state(page, "7. Training and feedback")).to_have_text("Awaiting sign-off")
        assert_not_reloaded(page)
        assert SignOffStale.objects.filter(project=project, step=7).count() == 1
        assert [m.to for m in mail.outbox if "step 7 changed" in m.subject] == [
            ["approver@example.com"]
        ]

        other.reload()
        expect(other.get_by_test_id("signoff-stale")).to_be_visible()
        expect(other.get_by_test_id("signoff")).to_contain_text("stale")
    finally:
        context.close()

    # Export the runbook: one click, a PDF that shows the stale sign-off.
    page.locator("#navigator").get_by_role("link", name="Runbook (PDF)").click()
    expect(page.get_by_role("heading", name="Runbook")).to_be_visible()
    # Made in the request: allow for a loaded machine (the layout takes seconds of CPU).
    with page.expect_download(timeout=120_000) as download_info:
        page.get_by_role("button", name="Export PDF").click()
    download = download_info.value
    assert re.fullmatch(r"[a-z0-9-]+-runbook-[0-9a-f]{12}\.pdf", download.suggested_filename)
    # The exports list refreshed in place: the new export is listed, done, without a reload.
    expect(page.get_by_test_id("exports")).to_contain_text("done")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    assert path.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "7. Training and feedback" in text
        assert "Restart the worker, then replay the queue" in text
        signoffs = text[text.rindex("Sign-offs") :]
        row = next(line for line in signoffs.splitlines() if approver.username in line)
        # A stale approval no longer counts, and the runbook never calls it "Approved".
        assert "Approval no longer counts" in row and "stale" in row and "Runbook entries" in row
        assert "Approved" not in row
    page.reload()
    expect(page.get_by_test_id("exports")).to_contain_text("done")
