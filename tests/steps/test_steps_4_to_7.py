"""Steps 4 to 7: pages, inline tables, one-per-project forms, evidence files and readiness."""

from datetime import date
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from planner.checklist.evidence import Evidence
from planner.checklist.readiness import (
    AWAITING_SIGN_OFF,
    IN_PROGRESS,
    NOT_STARTED,
    project_readiness,
)
from planner.models import (
    Connection,
    DeploymentPlan,
    Monitor,
    RollbackStep,
    TestCase,
    TrainingPlan,
)
from planner.models.testing import TestStage as Stage
from planner.reviews.schedule import dates_in_force
from tests.conftest import HTMX, client_for
from tests.factories import (
    ConnectionFactory,
    CriterionFactory,
    MonitorFactory,
    RollbackStepFactory,
    TestCaseFactory,
    UserFactory,
    fill_steps_4_to_7,
)


def step_url(project, number):
    return reverse("planner:step", args=[project.pk, number])


def add_url(kind, project):
    return reverse(f"planner:{kind}_add", args=[project.pk])


def failing(project, number):
    r = project_readiness(project).for_step(number)
    return {o.rule.code for o in r.outcomes if not o.passed}


CASE = {
    "add-testcase-stage": "1",
    "add-testcase-description": "Connect to the billing API",
    "add-testcase-data_set": "none",
    "add-testcase-expected_result": "HTTP 200 from /health",
    "add-testcase-pass_criterion": "200 within 2 s",
    "add-testcase-owner": "QA",
    "add-testcase-status": "passed",
    "add-testcase-evidence_note": "",
}


def test_steps_4_to_7_pages_show_their_sections(project, owner_client):
    expected = {
        4: ["Stages, in order", "Test cases", "Parallel run and cut-over", "Reverse direction"],
        5: ["Pipeline, environments and rollout", "Rollback triggers", "Rollback steps"],
        6: ["Success criteria from step 1", "Monitors"],
        7: ["Training, materials and feedback", "Incident runbook"],
    }
    for number, titles in expected.items():
        html = owner_client.get(step_url(project, number)).content.decode()
        assert 'data-testid="not-available"' not in html
        for title in titles:
            assert title in html, (number, title)
        assert 'id="signoff"' in html  # every built step has its sign-off panel


def test_add_a_test_case_with_an_evidence_file(project, owner_client, member):
    upload = SimpleUploadedFile("health-check.log", b"GET /health 200 OK\n", "text/plain")
    response = owner_client.post(
        add_url("testcase", project), {**CASE, "add-testcase-evidence_file": upload}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    case = TestCase.objects.get(project=project)
    assert case.evidence_file.name.endswith("health-check.log")
    assert case.has_evidence
    evidence = reverse("planner:testcase_evidence", args=[project.pk, case.pk])
    assert f'href="{evidence}"' in html  # the row links the file through the checked view
    assert 'id="stages"' in html and 'hx-swap-oob="true"' in html  # the stage ladder refreshes

    # Members may download it; outsiders see nothing.
    download = client_for(member("viewer")).get(evidence)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"GET /health 200 OK\n"
    assert "attachment" in download["Content-Disposition"]
    assert client_for(UserFactory()).get(evidence).status_code == 404


def test_the_add_form_uploads_files_with_and_without_javascript(project, owner_client):
    html = owner_client.get(step_url(project, 4)).content.decode()
    form = html[html.index('<form class="add-row"') :][:600]
    assert 'enctype="multipart/form-data"' in form and 'hx-encoding="multipart/form-data"' in form


def test_bad_test_case_input_names_the_field(project, owner_client):
    data = {**CASE, "add-testcase-stage": str(Stage.ERRORS), "add-testcase-description": ""}
    data["add-testcase-evidence_file"] = SimpleUploadedFile("x.exe", b"MZ", "application/x")
    html = owner_client.post(add_url("testcase", project), data, **HTMX).content.decode()
    assert "Error scenario: Say which error scenario this case covers." in html
    assert "Description: This field is required." in html
    assert "Evidence file: &#x27;x.exe&#x27; is not a kind of file accepted as evidence" in html
    assert not TestCase.objects.exists()

    data = {**CASE, "add-testcase-scenario": "target_down"}
    html = owner_client.post(add_url("testcase", project), data, **HTMX).content.decode()
    assert "Error scenario: Only error-scenario cases have an error scenario." in html


def test_step4_readiness_follows_the_test_plan(project):
    assert project_readiness(project).for_step(4).state == NOT_STARTED
    case = TestCaseFactory(project=project, pass_criterion="")
    assert failing(project, 4) >= {
        "every_stage_has_case",
        "cases_have_criteria",
        "error_scenarios",
        "cases_passed_with_evidence",
    }
    r = project_readiness(project).for_step(4)
    texts = [f.text for o in r.outcomes for f in o.findings]
    assert "No test case for the stage 'Batch'." in texts
    assert "No error-scenario case for 'volume spike'." in texts
    # Reverse direction is only needed when data flows back.
    assert "No test case for the stage 'Reverse direction'." not in texts
    case.delete()

    fill_steps_4_to_7(project)
    assert failing(project, 4) == {"signed_off"}
    assert project_readiness(project).for_step(4).state == AWAITING_SIGN_OFF

    ConnectionFactory(project=project, direction=Connection.Direction.BIDIRECTIONAL)
    assert failing(project, 4) == {"signed_off"}  # fill_steps_4_to_7 covers reverse too
    TestCase.objects.filter(stage=Stage.REVERSE).delete()
    assert "every_stage_has_case" in failing(project, 4)

    passed = TestCase.objects.filter(project=project).first()
    passed.evidence_note = ""
    passed.save()
    r = project_readiness(project).for_step(4)
    texts = [f.text for o in r.outcomes for f in o.findings]
    assert f"'{passed}' passed without evidence." in texts
    assert r.state == IN_PROGRESS


def test_test_plan_single_record_saves_with_its_default_cutover_rule(project, owner_client):
    html = owner_client.get(step_url(project, 4)).content.decode()
    assert "Cut over only when the parallel run&#x27;s results match" in html
    url = reverse("planner:testplan_save", args=[project.pk])
    response = owner_client.post(
        url,
        {
            "parallel_run": "Two weeks side by side, compared daily",
            "cutover_rule": "Only when results match",
            "expected_version": "",
        },
        **HTMX,
    )
    assert "Saved." in response.content.decode()
    assert project.test_plan.cutover_rule == "Only when results match"


def test_rollback_steps_get_the_next_order_and_rules_need_owners(project, owner_client):
    RollbackStepFactory(project=project, position=1)
    html = owner_client.get(step_url(project, 5)).content.decode()
    assert 'name="add-rollbackstep-position" value="2"' in html
    owner_client.post(
        add_url("rollbackstep", project),
        {"add-rollbackstep-position": "2", "add-rollbackstep-action": "Restore backup"},
        **HTMX,
    )
    step = RollbackStep.objects.get(project=project, position=2)
    r = project_readiness(project).for_step(5)
    texts = [f.text for o in r.outcomes for f in o.findings]
    assert f"Rollback step '{step}' needs an owner and an expected duration." in texts
    assert "No rollback trigger yet." in texts
    assert "No rollback rehearsal recorded (date and result)." in texts


def test_deployment_plan_rehearsal_needs_date_and_result(project, owner_client):
    url = reverse("planner:deployment_save", args=[project.pk])
    html = owner_client.post(
        url, {"rehearsal_result": "succeeded", "expected_version": ""}, **HTMX
    ).content.decode()
    assert "Rollback rehearsed on: Give the date of the rehearsal with its result." in html
    assert not DeploymentPlan.objects.exists()
    owner_client.post(
        url,
        {
            "pipeline": "build\ntest\ndeploy",
            "rollout": "subset",
            "rehearsed_on": "2026-11-20",
            "rehearsal_result": "failed",
            "expected_version": "",
        },
    )
    plan = DeploymentPlan.objects.get(project=project)
    assert plan.rehearsed_on == date(2026, 11, 20)
    texts = [f.text for o in project_readiness(project).for_step(5).outcomes for f in o.findings]
    assert "The rehearsal of 20 Nov 2026 failed." in texts


def test_a_monitor_for_each_success_criterion_in_one_click(project, owner_client):
    latency = CriterionFactory(
        project=project, metric="sync latency", comparator="<=", metric_key="latency_ms", unit="ms"
    )
    html = owner_client.get(step_url(project, 6)).content.decode()
    assert "sync latency" in html and "Add a monitor for it" in html
    assert "criteria_monitored" in failing(project, 6)

    url = reverse("planner:criterion_monitor", args=[project.pk, latency.pk])
    response = owner_client.post(url, **HTMX)
    html = response.content.decode()
    monitor = Monitor.objects.get(project=project)
    # It alerts on the breach: latency above the target.
    assert (monitor.comparator, monitor.threshold, monitor.criterion) == (
        ">",
        Decimal("5"),
        latency,
    )
    assert 'id="monitor-table"' in html and 'id="coverage"' in html
    assert "criteria_monitored" not in failing(project, 6)
    assert "monitors_complete" in failing(project, 6)  # no alert route yet


def test_monitor_rules_and_link_validation(project, owner_client):
    data = {
        "add-monitor-kind": "error_rate",
        "add-monitor-name": "error rate",
        "add-monitor-comparator": ">",
        "add-monitor-threshold": "1",
        "add-monitor-unit": "%",
        "add-monitor-window_value": "5",
        "add-monitor-window_unit": "minutes",
        "add-monitor-severity": "critical",
        "add-monitor-alert_route": "PagerDuty",
        "add-monitor-dashboard_url": "ftp://grafana.example.com/d/1",
    }
    html = owner_client.post(add_url("monitor", project), data, **HTMX).content.decode()
    assert "Dashboard link: Give an http:// or https:// link." in html
    data["add-monitor-dashboard_url"] = "https://grafana.example.com/d/1"
    html = owner_client.post(add_url("monitor", project), data, **HTMX).content.decode()
    assert 'href="https://grafana.example.com/d/1"' in html
    texts = [f.text for o in project_readiness(project).for_step(6).outcomes for f in o.findings]
    assert "No connectivity check yet." in texts and "No error rate check yet." not in texts
    for kind in ("connectivity", "throughput", "data_quality"):
        MonitorFactory(project=project, kind=kind)
    assert failing(project, 6) == {"signed_off"}


def test_training_plan_and_incident_runbook(project, owner_client):
    url = reverse("planner:training_save", args=[project.pk])
    owner_client.post(
        url,
        {
            "guide": "https://wiki.example.com/guide",
            "feedback_channel": "#sync",
            "review_schedule": "Monthly for the first 3 months after go-live, then quarterly.",
            "go_live_on": "2027-01-31",
            "expected_version": "",
        },
    )
    assert TrainingPlan.objects.get(project=project).go_live_on == date(2027, 1, 31)
    html = owner_client.get(step_url(project, 7)).content.decode()
    assert "28 Feb 2027, 31 Mar 2027, 30 Apr 2027, 31 Jul 2027" in html
    assert failing(project, 7) == {"incident_runbook", "signed_off"}

    html = owner_client.post(
        add_url("incident", project), {"add-incident-symptom": "No syncs"}, **HTMX
    ).content.decode()
    assert "Check: This field is required." in html and "Fix: This field is required." in html
    owner_client.post(
        add_url("incident", project),
        {
            "add-incident-symptom": "No syncs",
            "add-incident-to_check": "Queue depth",
            "add-incident-fix": "Restart worker",
            "add-incident-escalation": "On-call",
        },
        **HTMX,
    )
    assert failing(project, 7) == {"signed_off"}


def test_review_dates_follow_the_default_schedule(project):
    # No cadence edited yet: monthly for three months, then quarterly.
    assert dates_in_force(project, date(2027, 1, 31)) == [
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
        date(2027, 7, 31),
        date(2027, 10, 31),
        date(2028, 1, 31),
    ]


def test_viewers_see_the_tables_without_edit_controls(project, member):
    fill_steps_4_to_7(project)
    html = client_for(member("viewer")).get(step_url(project, 4)).content.decode()
    assert "Connection works" in html
    assert 'class="add-row"' not in html and "Record sign-off" not in html


def test_readiness_queries_do_not_grow_with_plan_rows(project, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            project_readiness(project, Evidence.load(project))
        return len(ctx)

    fill_steps_4_to_7(project)
    few = count()
    for _ in range(10):
        TestCaseFactory(project=project)
        RollbackStepFactory(project=project)
        MonitorFactory(project=project)
    assert count() == few
