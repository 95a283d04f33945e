"""Archive (read-only, off the dashboard, restorable) and delete (typed name, logged)."""

import pytest
from django.test import Client
from django.urls import reverse

from planner.api.tokens import create_token
from planner.models import (
    GoLive,
    IntegrationProject,
    Membership,
    ProjectDeletion,
    Role,
    SignOff,
    System,
)
from planner.models.signoff import Immutable
from planner.web.permissions import ARCHIVED
from tests.conftest import HTMX, client_for
from tests.factories import SignOffFactory, UserFactory
from tests.urlwalk import ACCOUNT_LEVEL, planner_patterns, url_for

ARCHIVE_OK = {"planner:project_archive", "planner:project_delete"}


def archive(client, project):
    return client.post(reverse("planner:project_archive", args=[project.pk]))


def test_archiving_hides_the_project_from_the_dashboard_and_lists_it_under_archived(
    owner_client, project
):
    response = archive(owner_client, project)
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.archived
    page = owner_client.get(reverse("planner:project_list")).content.decode()
    assert 'data-testid="portfolio"' not in page
    archived = page.split('data-testid="archived-projects"')[1]
    assert project.name in archived


def test_an_archived_project_still_reads(owner_client, project):
    archive(owner_client, project)
    page = owner_client.get(reverse("planner:overview", args=[project.pk]))
    assert page.status_code == 200
    assert b"this project is read-only" in page.content


@pytest.mark.parametrize("htmx", [False, True])
def test_every_write_to_an_archived_project_is_refused_with_the_reason(world, htmx):
    project = world["project"]
    client = client_for(project.owner)
    archive(client, project)
    extra = HTMX if htmx else {}
    for name, p in planner_patterns():
        if name in ACCOUNT_LEVEL or name in ARCHIVE_OK:
            continue
        url = url_for(name, p, world)
        response = client.post(url, {"metric": "changed", "name": "changed"}, **extra)
        assert response.status_code == 403, (name, response.status_code)
        assert b"This project is archived, so it is read-only" in response.content, name
    criterion = world["objects"]["criterion"]
    criterion.refresh_from_db()
    assert criterion.metric == "sync latency"
    project.refresh_from_db()
    assert project.archived and project.name != "changed"


def test_the_api_refuses_writes_to_an_archived_project(owner_client, project):
    from tests.factories import ConnectionFactory

    connection = ConnectionFactory(project=project)
    archive(owner_client, project)
    _, raw = create_token(project.owner, "ci")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    url = f"/api/projects/{project.pk}/connections/{connection.pk}/runs"
    response = Client().post(url, **headers)
    assert response.status_code == 403
    assert response.json()["detail"] == ARCHIVED
    assert Client().get(f"/api/projects/{project.pk}/verdict", **headers).status_code == 200


def test_the_owner_restores_it(owner_client, project):
    archive(owner_client, project)
    response = owner_client.post(
        reverse("planner:project_archive", args=[project.pk]), {"restore": "1"}
    )
    assert response["Location"] == reverse("planner:overview", args=[project.pk])
    project.refresh_from_db()
    assert not project.archived
    assert project.name in owner_client.get(reverse("planner:project_list")).content.decode()
    settings_url = reverse("planner:settings", args=[project.pk])
    owner_client.post(
        settings_url, {"name": "Renamed", "business_problem": "x", "expected_version": 1}
    )
    project.refresh_from_db()
    assert project.name == "Renamed"


@pytest.mark.parametrize(
    "role, status", [(Role.EDITOR, 403), (Role.APPROVER, 403), (Role.VIEWER, 403)]
)
def test_only_owners_archive_restore_or_delete(member, project, role, status):
    client = client_for(member(role))
    assert archive(client, project).status_code == status
    project.refresh_from_db()
    assert not project.archived
    IntegrationProject.objects.filter(pk=project.pk).update(archived_at="2026-01-01T00:00Z")
    restore = client.post(reverse("planner:project_archive", args=[project.pk]), {"restore": "1"})
    assert restore.status_code == status
    delete = client.post(
        reverse("planner:project_delete", args=[project.pk]), {"confirm_name": project.name}
    )
    assert delete.status_code == status
    project.refresh_from_db()
    assert project.archived


def test_outsiders_and_anonymous_learn_nothing(outsider_client, client, project):
    for url in (
        reverse("planner:project_archive", args=[project.pk]),
        reverse("planner:project_delete", args=[project.pk]),
    ):
        assert outsider_client.post(url, {"confirm_name": project.name}).status_code == 404
        assert client.post(url, {"confirm_name": project.name}).status_code == 302
    assert IntegrationProject.objects.filter(pk=project.pk).exists()


def test_deleting_needs_the_exact_name(owner_client, project):
    url = reverse("planner:project_delete", args=[project.pk])
    page = owner_client.get(url)
    assert b"Type the project&#x27;s name to confirm" in page.content
    wrong = owner_client.post(url, {"confirm_name": project.name.upper()})
    assert wrong.status_code == 200
    assert b"That is not the project&#x27;s name" in wrong.content
    assert IntegrationProject.objects.filter(pk=project.pk).exists()
    assert not ProjectDeletion.objects.exists()


def test_deleting_a_full_project_removes_it_and_keeps_the_log_and_history(world):
    project = world["project"]
    pk, name = project.pk, project.name
    systems, members = project.systems.count(), project.memberships.count()
    assert systems >= 2 and members == 2
    client = client_for(project.owner)
    response = client.post(
        reverse("planner:project_delete", args=[pk]), {"confirm_name": f" {name} "}
    )
    assert response.status_code == 302
    assert not IntegrationProject.objects.filter(pk=pk).exists()
    assert not System.objects.filter(project_id=pk).exists()
    assert not Membership.objects.filter(project_id=pk).exists()
    record = ProjectDeletion.objects.get()
    assert (record.project_id, record.name, record.deleted_by) == (pk, name, project.owner)
    assert record.contents["systems"] == systems and record.contents["members"] == members
    history = IntegrationProject.history.filter(id=pk).order_by("history_date")
    assert history.last().history_type == "-"
    assert history.last().history_user == project.owner


def test_a_project_with_sign_offs_and_a_go_live_is_deleted_and_the_log_keeps_them(
    owner_client, project
):
    signoff = SignOffFactory(project=project)
    GoLive.objects.create(project=project, user=project.owner)
    url = reverse("planner:project_delete", args=[project.pk])
    page = owner_client.get(url).content.decode()
    assert "It has 1 sign-off and 1 go-live record" in page
    # A wrong name deletes nothing, audit records or not.
    assert owner_client.post(url, {"confirm_name": "nope"}).status_code == 200
    assert SignOff.objects.filter(pk=signoff.pk).exists()
    response = owner_client.post(url, {"confirm_name": project.name})
    assert response.status_code == 302
    assert not IntegrationProject.objects.filter(pk=project.pk).exists()
    assert not SignOff.objects.filter(project_id=project.pk).exists()
    assert not GoLive.objects.filter(project_id=project.pk).exists()
    trail = ProjectDeletion.objects.get().contents["audit trail"]
    [kept] = trail["sign-offs"]
    assert (kept["step"], kept["by"], kept["version"]) == (
        signoff.step,
        signoff.user.get_username(),
        signoff.content_hash,
    )
    assert [g["by"] for g in trail["go-lives"]] == [project.owner.get_username()]
    staff = client_for(UserFactory(is_staff=True))
    log = staff.get(reverse("planner:deleted_projects")).content.decode()
    assert f"step {signoff.step}: {signoff.decision} by {signoff.user.get_username()}" in log
    assert f"live by {project.owner.get_username()}" in log


def test_a_sign_off_still_cannot_be_deleted_on_its_own(project):
    signoff = SignOffFactory(project=project)
    with pytest.raises(Immutable):
        signoff.delete()
    with pytest.raises(Immutable):
        SignOff.objects.filter(pk=signoff.pk).delete()


def test_the_deletion_log_is_for_staff(owner_client, project):
    name = project.name
    owner_client.post(reverse("planner:project_delete", args=[project.pk]), {"confirm_name": name})
    url = reverse("planner:deleted_projects")
    assert owner_client.get(url).status_code == 403
    staff = client_for(UserFactory(is_staff=True))
    page = staff.get(url).content.decode()
    assert name in page and project.owner.username in page
    assert Client().get(url).status_code == 302


def test_an_archived_project_runs_no_scheduled_validation_or_review(db, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from planner.models import HealthReview, ReviewSchedule, ValidationRun
    from planner.reviews import golive as going_live
    from planner.reviews import tasks as review_tasks
    from planner.runs.tasks import scheduled_validation
    from tests.factories import inline_workers, ready_project

    inline_workers(monkeypatch)
    project, connection = ready_project()
    going_live.mark_live(project, project.owner)
    ReviewSchedule.objects.filter(project=project).update(
        next_due=timezone.now() - timedelta(days=1)
    )
    runs = ValidationRun.objects.filter(project=project).count()
    IntegrationProject.objects.filter(pk=project.pk).update(archived_at=timezone.now())
    assert scheduled_validation(connection.pk) is None
    assert review_tasks.dispatch_due_reviews.run() == []
    assert ValidationRun.objects.filter(project=project).count() == runs
    assert not HealthReview.objects.filter(project=project).exists()
    # restored, both resume
    IntegrationProject.objects.filter(pk=project.pk).update(archived_at=None)
    assert scheduled_validation(connection.pk) is not None
    assert len(review_tasks.dispatch_due_reviews.run()) == 1
