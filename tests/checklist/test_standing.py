"""The standing the write path stores for lists of projects: written after each write, read
only while it holds (the project's revision and the day it was computed at), and always the
project's own verdict's.

These tests commit (transactional database): a standing is stored after a commit, stamped
with the revision the commit counted.
"""

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from planner.api.tokens import create_token
from planner.checklist import golive, standing
from planner.checklist.evidence import Evidence
from planner.checklist.readiness import project_readiness
from planner.checklist.revision import current
from planner.models import IntegrationProject, Objective, ProjectStanding
from tests.conftest import HTMX, client_for
from tests.factories import (
    ConnectionFactory,
    ProjectFactory,
    UserFactory,
    portfolio_project,
    ready_project,
)

pytestmark = pytest.mark.django_db(transaction=True)


def computed(project: IntegrationProject) -> tuple[int, bool]:
    readiness = project_readiness(project, Evidence.load(project))
    return readiness.percent, readiness.blocked


def test_a_page_write_stores_the_standing_at_the_revision_it_counted():
    project = ProjectFactory()
    client = client_for(project.owner)
    assert not ProjectStanding.objects.filter(project=project).exists()

    response = client.post(
        f"/projects/{project.pk}/steps/1/objective/",
        {"business_objective": "No inactive customer is invoiced.", "expected_version": ""},
        **HTMX,
    )

    assert response.status_code == 200
    row = ProjectStanding.objects.get(project=project)
    assert row.revision_token == current(project.pk).token != ""
    assert row.day == timezone.localdate()
    assert (row.percent, row.blocked) == computed(project)
    assert standing.stored([project.pk]) == {project.pk: row}


def test_an_api_write_stores_the_standing_too():
    project = ProjectFactory()
    source_target = ConnectionFactory(project=project)
    _, raw = create_token(project.owner, "ci")
    response = client_for(project.owner).post(
        f"/api/projects/{project.pk}/connections/{source_target.pk}/mapping",
        {"file": SimpleUploadedFile("m.csv", b"source field,target field\nid,id\n")},
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 200, response.content
    row = ProjectStanding.objects.get(project=project)
    assert row.revision_token == current(project.pk).token
    assert (row.percent, row.blocked) == computed(project)


def test_a_write_no_write_path_saw_or_a_new_day_makes_the_stored_standing_unused():
    project = ProjectFactory()
    standing.store(project)
    assert set(standing.stored([project.pk])) == {project.pk}
    assert standing.stored([project.pk], day=timezone.localdate() + timedelta(days=1)) == {}

    IntegrationProject.objects.filter(pk=project.pk).update(name="Renamed by a bulk update")

    assert standing.stored([project.pk]) == {}
    with connection.cursor() as cursor:  # a raw statement, no ORM at all
        cursor.execute(
            "UPDATE planner_integrationproject SET version = version WHERE id = %s", [project.pk]
        )
    standing.store(project)
    assert set(standing.stored([project.pk])) == {project.pk}
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE planner_integrationproject SET version = version WHERE id = %s", [project.pk]
        )
    assert standing.stored([project.pk]) == {}


def test_nothing_is_stored_inside_a_transaction_its_writes_are_not_counted_yet():
    project = ProjectFactory()
    with transaction.atomic():
        assert standing.store(project) is None
        standing.after_write(project)  # stored once the outer transaction commits
        assert not ProjectStanding.objects.filter(project=project).exists()
    assert ProjectStanding.objects.filter(project=project).exists()

    with transaction.atomic():
        standing.after_write(project)
        transaction.set_rollback(True)
    row = ProjectStanding.objects.get(project=project)
    assert row.revision_token == current(project.pk).token


def test_standings_read_from_stored_rows_are_each_verdicts_own():
    owner = UserFactory()
    ready, _ = ready_project()
    blocked = [portfolio_project(owner, n) for n in range(3)]
    projects = [*blocked, ready, ProjectFactory()]
    now = timezone.now()
    computed_first = golive.standings(projects, now=now)
    for p in projects:
        standing.store(p)
    assert set(standing.stored([p.pk for p in projects])) == {p.pk for p in projects}

    from_rows = golive.standings(projects, now=now)

    verdicts = {p.pk: golive.verdict(p, now=now) for p in projects}
    expected = {pk: golive.Standing(v.ready, v.percent, v.live) for pk, v in verdicts.items()}
    assert from_rows == computed_first == expected
    assert from_rows[ready.pk].ready
    assert not any(from_rows[p.pk].ready for p in blocked)


def test_the_dashboard_reads_no_step_rows_of_blocked_projects_written_through_the_app():
    owner = UserFactory()
    projects = [portfolio_project(owner, n) for n in range(3)]
    client = client_for(owner)
    for p in projects:
        standing.after_write(p)
    loaded = []
    original = Evidence.load_many

    def spy(projects_to_load):
        loaded.extend(p.pk for p in projects_to_load)
        return original(projects_to_load)

    Evidence.load_many = staticmethod(spy)
    try:
        shown = client.get("/").content.decode()
        assert loaded == []  # every project blocked, every standing stored

        # Written past the write path: that project alone is computed, and shown changed.
        written = projects[1]
        cell = rf">{re.escape(written.name)}</a></td>.*?/go-live/\">(\d+)%"
        before = int(re.search(cell, shown, re.S)[1])
        Objective.objects.filter(project=written).update(business_objective="")
        after = int(re.search(cell, client.get("/").content.decode(), re.S)[1])
        assert loaded == [written.pk]
        assert after < before
    finally:
        Evidence.load_many = original


def test_the_dashboard_needs_no_more_queries_for_more_stored_projects():
    owner = UserFactory()
    client = client_for(owner)
    few = [portfolio_project(owner, n) for n in range(2)]
    for p in few:
        standing.after_write(p)
    client.get("/")
    with CaptureQueriesContext(connection) as two:
        client.get("/")
    more = [portfolio_project(owner, n) for n in range(2, 6)]
    for p in more:
        standing.after_write(p)
    IntegrationProject.objects.filter(pk__in=[p.pk for p in few]).update(version=F("version"))
    for p in few:
        standing.after_write(p)
    with CaptureQueriesContext(connection) as six:
        client.get("/")
    assert len(six) == len(two)


def test_a_finished_run_stores_its_projects_standing(monkeypatch):
    from planner.runs import service as validation
    from planner.runs.tasks import run_validation

    project, source_target = ready_project()
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    real = validation.execute_run
    monkeypatch.setattr(
        validation, "execute_run", lambda pk, task_id="": real(pk, task_id, heartbeat=False)
    )
    run = validation.start_validation_run(source_target, None)
    assert standing.stored([project.pk]) == {}  # written by starting the run

    run_validation.run(run.pk)

    row = standing.stored([project.pk])[project.pk]
    assert row.revision_token == current(project.pk).token
    assert (row.percent, row.blocked) == computed(project)
