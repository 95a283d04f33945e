"""Pages never write: every URL of the app, read with GET, runs no INSERT, UPDATE or DELETE.

The walk is the one of the permission tests (every URL pattern, every project object), on a
project where reading used to write: a sign-off made stale by a change nobody has recorded yet,
a live project, sign-offs and runs. Writes happen on the write path only (recording the stale
sign-off, then mailing the approvers after the commit).
"""

import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from planner.api.tokens import create_token
from planner.checklist.signoff import sign, step_hashes
from planner.models import ApiToken, GoLive, Role, SignOffStale, SuccessCriterion, System
from tests.conftest import HTMX, client_for
from tests.factories import (
    DataElementFactory,
    MembershipFactory,
    ObjectiveFactory,
    SystemProfileFactory,
)
from tests.urlwalk import planner_patterns, url_for

WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def writes(queries) -> list[str]:
    return [q["sql"] for q in queries if WRITE.match(q["sql"])]


@pytest.fixture
def stale_world(world):
    """The walk's project with an approved step 1 that then changed behind the pages' back."""
    project = world["project"]
    ObjectiveFactory(project=project)
    DataElementFactory(project=project, source_of_truth=world["objects"]["system"])
    for system in System.objects.filter(project=project, profile__isnull=True):
        SystemProfileFactory(system=system)  # step 1 asks every system to be profiled
    approver = MembershipFactory(project=project, role=Role.APPROVER, user__email="a@example.com")
    sign(project, 1, approver, "approve", "", step_hashes(project, [1])[1])
    # Changed without going through a view: no write path has recorded it.
    SuccessCriterion.objects.filter(project=project).update(metric="records in sync")
    GoLive.objects.create(project=project, user=project.owner, snapshot={"step_hashes": {}})
    return world


def test_no_page_writes_on_get(stale_world):
    project = stale_world["project"]
    client = client_for(project.owner)
    client.get(reverse("planner:project_list"))  # the session and sign-in are written here
    mail.outbox.clear()
    seen = []
    for htmx in (False, True):
        for name, pattern in planner_patterns():
            url = url_for(name, pattern, stale_world)
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(url, **(HTMX if htmx else {}))
            assert response.status_code < 500, (name, response.status_code)
            assert writes(ctx.captured_queries) == [], (name, url)
            seen.append(name)
    assert {"planner:step", "planner:golive", "planner:runbook"} <= set(seen)
    assert not SignOffStale.objects.exists() and mail.outbox == []


def test_the_api_reads_without_writing(stale_world):
    project = stale_world["project"]
    token, raw = create_token(project.owner, "ci")
    # The token's last use is stamped at most once a minute: stamped now, so reads don't.
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    run = stale_world["objects"]["run"]
    urls = [
        "/api/projects",
        f"/api/projects/{project.pk}/verdict",
        f"/api/projects/{project.pk}/runs/{run.pk}",
        f"/api/projects/{project.pk}/runs/{run.pk}/results",
        f"/api/projects/{project.pk}/connections/{run.connection_id}/mapping?fmt=csv",
    ]
    client = client_for(project.owner)
    for url in urls:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url, **headers)
        assert response.status_code < 500, (url, response.status_code)
        assert writes(ctx.captured_queries) == [], url
    assert not SignOffStale.objects.exists()


def test_staleness_is_recorded_on_the_write_path(stale_world, tasks_after_commit):
    """The next write to the project records the stale sign-off and mails after the commit."""
    project = stale_world["project"]
    criterion = stale_world["objects"]["criterion"]
    criterion.refresh_from_db()
    url = reverse("planner:criterion_edit", args=[project.pk, criterion.pk])
    prefix = f"criterion-{criterion.pk}-"
    data = {
        prefix + "metric": "error rate",
        prefix + "comparator": "<=",
        prefix + "target": "5",
        prefix + "unit": "minutes",
        prefix + "attainment_pct": "99.9",
        prefix + "window_value": "30",
        prefix + "window_unit": "days",
        prefix + "expected_version": str(criterion.version),
    }
    mail.outbox.clear()
    with tasks_after_commit():
        response = client_for(project.owner).post(url, data, **HTMX)
        assert mail.outbox == []  # not before the commit
    assert response.status_code == 200
    event = SignOffStale.objects.get()
    assert event.notified == "a@example.com"
    assert [m.to for m in mail.outbox] == [["a@example.com"]]


def test_every_get_of_the_api_reads_without_writing(stale_world):
    """Every GET operation the API documents, with real objects of the project."""
    from planner.api.views import api

    project = stale_world["project"]
    objects = stale_world["objects"]
    token, raw = create_token(project.owner, "ci")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    ids = {
        "project_id": project.pk,
        "run_id": objects["run"].pk,
        "connection_id": objects["run"].connection_id,
        "criterion_id": objects["criterion"].pk,
    }
    paths = [
        path
        for path, operations in api.get_openapi_schema()["paths"].items()
        if "get" in operations
    ]
    assert len(paths) > 15
    client = client_for(project.owner)
    for path in paths:
        url = path.format(**ids)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url, **headers)
        assert response.status_code < 500, (url, response.status_code)
        assert writes(ctx.captured_queries) == [], url
    assert not SignOffStale.objects.exists() and mail.outbox == []
