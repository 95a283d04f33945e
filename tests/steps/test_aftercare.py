"""After go-live (step 7): the improvement backlog tied to KPIs, the changelog with entries
written by people and recorded from mapping edits while live, their rules, runbook and API."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from planner.api.tokens import create_token
from planner.checklist.readiness import project_readiness
from planner.checklist.signoff import step_hashes
from planner.models import ChangelogEntry, FieldMapping, GoLive, Improvement, TrainingPlan
from planner.runbook.service import render_html
from tests.conftest import client_for
from tests.factories import (
    ChangelogEntryFactory,
    ConnectionFactory,
    CriterionFactory,
    FieldMappingFactory,
    ImprovementFactory,
    MembershipFactory,
    ProjectFactory,
    SystemFactory,
)
from tests.steps.mapping_forms import PM_SHEET, confirm, preview


@pytest.fixture
def project(db):
    return ProjectFactory()


def go_live(project, days_ago: int = 0) -> None:
    GoLive.objects.create(
        project=project,
        user=project.owner,
        snapshot={"step_hashes": {}},
        created_at=timezone.now() - timedelta(days=days_ago),
    )


def step7_url(project, part: str) -> str:
    return reverse(f"planner:{part}", args=[project.pk])


def rule(project, code: str):
    outcomes = project_readiness(project).for_step(7).outcomes
    return next(o for o in outcomes if o.rule.code == code)


# Backlog ---------------------------------------------------------------------------------


def test_an_improvement_must_name_the_kpi_it_should_move(project):
    client = client_for(project.owner)
    response = client.post(
        step7_url(project, "improvement_add"),
        {
            "add-improvement-title": "Batch the writes",
            "add-improvement-priority": "1",
            "add-improvement-status": "proposed",
        },
    )
    assert response.status_code == 200
    assert "Tie it to the KPI it should move" in response.content.decode()
    assert not Improvement.objects.exists()

    criterion = CriterionFactory(project=project)
    response = client.post(
        step7_url(project, "improvement_add"),
        {
            "add-improvement-title": "Batch the writes",
            "add-improvement-priority": "1",
            "add-improvement-status": "planned",
            "add-improvement-criterion": criterion.pk,
        },
    )
    assert response.status_code == 302
    item = Improvement.objects.get()
    assert item.criterion == criterion and item.get_priority_display() == "High"
    assert item.history.count() == 1
    page = client.get(reverse("planner:step", args=[project.pk, 7])).content.decode()
    assert "Batch the writes" in page and escape(str(criterion)) in page


def test_a_criterion_of_another_project_is_refused(project):
    foreign = CriterionFactory()
    response = client_for(project.owner).post(
        step7_url(project, "improvement_add"),
        {
            "add-improvement-title": "X",
            "add-improvement-priority": "2",
            "add-improvement-status": "proposed",
            "add-improvement-criterion": foreign.pk,
        },
    )
    assert response.status_code == 200
    assert not Improvement.objects.exists()


def test_a_viewer_cannot_add_to_the_backlog(project):
    viewer = MembershipFactory(project=project, role="viewer").user
    response = client_for(viewer).post(
        step7_url(project, "improvement_add"),
        {
            "add-improvement-title": "X",
            "add-improvement-priority": "2",
            "add-improvement-status": "proposed",
            "add-improvement-metric_key": "error_rate_pct",
        },
    )
    assert response.status_code == 403
    assert not Improvement.objects.exists()


def test_backlog_rules_before_and_after_go_live(project):
    # An item without a KPI (as the admin or an old row could leave it) is a finding.
    item = ImprovementFactory(project=project, metric_key="")
    assert not rule(project, "backlog_kpis").passed
    item.metric_key = "agreement_pct"
    item.save()
    assert rule(project, "backlog_kpis").passed
    # Not live: nothing to review yet.
    assert rule(project, "backlog_reviewed").passed
    # Live for 40 days and never reviewed: due.
    go_live(project, days_ago=40)
    finding = rule(project, "backlog_reviewed")
    assert not finding.passed and "not reviewed since the go-live" in finding.findings[0].text
    plan = TrainingPlan.objects.create(
        project=project, backlog_reviewed_on=timezone.localdate() - timedelta(days=32)
    )
    finding = rule(project, "backlog_reviewed")
    assert not finding.passed and "last reviewed" in finding.findings[0].text
    plan.backlog_reviewed_on = timezone.localdate() - timedelta(days=3)
    plan.save()
    assert rule(project, "backlog_reviewed").passed


def test_a_project_just_live_has_a_month_before_its_first_backlog_review(project):
    go_live(project, days_ago=30)
    assert rule(project, "backlog_reviewed").passed


# Changelog -------------------------------------------------------------------------------


def cell(client, row: FieldMapping, field: str, value: str):
    row.refresh_from_db()
    return client.post(
        reverse("planner:mapping_cell", args=[row.project_id, row.pk]),
        {"field": field, "value": value, "expected_version": row.version},
    )


def test_mapping_edits_are_logged_only_once_live(project):
    connection = ConnectionFactory(project=project)
    row = FieldMappingFactory(project=project, connection=connection, rule="trim")
    client = client_for(project.owner)
    assert cell(client, row, "rule", "trim | upper").status_code == 200
    assert not ChangelogEntry.objects.exists()  # before go-live: the plan, not a change

    go_live(project)
    assert cell(client, row, "rule", "trim | lower").status_code == 200
    entry = ChangelogEntry.objects.get()
    assert entry.origin == "mapping" and entry.author == project.owner
    assert entry.connection == connection
    assert "rule: 'trim | upper' → 'trim | lower'" in entry.detail
    # The entry links to that very version in the history, and the diff shows the change.
    latest = row.history.order_by("-history_id").first()
    assert entry.mapping_history_id == latest.history_id
    page = client.get(reverse("planner:step", args=[project.pk, 7])).content.decode()
    link = reverse("planner:history_object", args=[project.pk, "mapping", row.pk])
    assert f"{link}?b={latest.history_id}" in page
    diff = client.get(f"{link}?b={latest.history_id}").content.decode()
    assert "trim | lower" in diff


def test_a_refused_cell_edit_logs_nothing(project):
    row = FieldMappingFactory(project=project, rule="trim")
    go_live(project)
    response = cell(client_for(project.owner), row, "rule", "trim | nonsense")
    assert response.status_code == 422
    assert not ChangelogEntry.objects.exists()


def test_deleting_while_live_is_logged(project):
    connection = ConnectionFactory(project=project)
    row = FieldMappingFactory(project=project, connection=connection)
    go_live(project)
    client = client_for(project.owner)
    response = client.post(reverse("planner:mapping_delete", args=[project.pk, row.pk]))
    assert response.status_code == 302
    entry = ChangelogEntry.objects.get()
    assert entry.summary.endswith("deleted") and entry.mapping_id == row.pk


def test_reading_pages_writes_no_entry(project):
    FieldMappingFactory(project=project)
    go_live(project)
    client = client_for(project.owner)
    client.get(reverse("planner:step", args=[project.pk, 2]))
    client.get(reverse("planner:step", args=[project.pk, 7]))
    assert not ChangelogEntry.objects.exists()


def test_a_person_writes_an_entry_and_is_named_as_its_author(project):
    editor = MembershipFactory(project=project, role="editor").user
    response = client_for(editor).post(
        step7_url(project, "changelog_add"),
        {
            "add-changelog-changed_at": "2026-11-20T09:30",
            "add-changelog-summary": "Moved the nightly window to 02:00",
        },
    )
    assert response.status_code == 302
    entry = ChangelogEntry.objects.get()
    assert entry.author == editor and entry.origin == "person"
    assert entry.history.count() >= 1


def test_runbook_and_api_show_backlog_and_changelog(project):
    ImprovementFactory(project=project, title="Retry 429s with jitter")
    ChangelogEntryFactory(project=project, summary="Raised the batch size to 500")
    html = render_html(project)
    assert "Improvement backlog" in html and "Retry 429s with jitter" in html
    assert "Changelog after go-live" in html and "Raised the batch size to 500" in html

    _, raw = create_token(project.owner, "ci")
    body = (
        client_for(project.owner)
        .get(f"/api/projects/{project.pk}/aftercare", HTTP_AUTHORIZATION=f"Bearer {raw}")
        .json()
    )
    assert body["live"] is False and body["backlog_review_due"] is False
    assert body["backlog"][0]["title"] == "Retry 429s with jitter"
    assert body["backlog"][0]["kpi"] == "Error rate (%)"
    assert body["changelog"][0]["summary"] == "Raised the batch size to 500"


def test_recording_a_backlog_review_does_not_stale_step_7s_sign_off(project):
    plan = TrainingPlan.objects.create(project=project, guide="wiki")
    before = step_hashes(project, [7])
    plan.backlog_reviewed_on = timezone.localdate()
    plan.save()
    assert step_hashes(project, [7]) == before
    plan.guide = "the new wiki"
    plan.save()
    assert step_hashes(project, [7]) != before


def test_a_spreadsheet_import_while_live_is_one_entry_per_connection(project):
    crm = SystemFactory(project=project, name="Sales CRM")
    billing = SystemFactory(project=project, name="Billing")
    connection = ConnectionFactory(project=project, source=crm, target=billing)
    client = client_for(project.owner)
    go_live(project)
    response = preview(client, project, connection, PM_SHEET.encode())
    assert not ChangelogEntry.objects.exists()  # the preview writes nothing
    confirm(client, project, connection, response)
    entry = ChangelogEntry.objects.get()
    assert entry.summary == "Spreadsheet import added 3 rows"
    assert entry.connection == connection and entry.author == project.owner
