"""Walk every URL of the app as anonymous, outsider, viewer and owner.

A new page that forgets its permission check fails here: every project URL must be guarded by
`project_access`, and the refusals must be the right ones.
"""

import pytest
from django.urls import reverse

from tests.conftest import HTMX, client_for
from tests.factories import (
    ProjectFactory,
    UserFactory,
)
from tests.urlwalk import ACCOUNT_LEVEL, planner_patterns, url_for


def test_every_project_url_is_guarded():
    unguarded = [
        name
        for name, p in planner_patterns()
        if name not in ACCOUNT_LEVEL and not hasattr(p.callback, "project_capabilities")
    ]
    assert unguarded == []


def test_anonymous_is_sent_to_login_everywhere(world, client):
    for name, p in planner_patterns():
        url = url_for(name, p, world)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302, (name, method)
            assert response["Location"].startswith(reverse("login")), (name, method)


@pytest.mark.parametrize("htmx", [False, True])
def test_outsider_sees_nothing_of_the_project(world, htmx):
    client = client_for(UserFactory())
    extra = HTMX if htmx else {}
    for name, p in planner_patterns():
        if name in ACCOUNT_LEVEL:
            continue
        url = url_for(name, p, world)
        for method in ("get", "post"):
            response = getattr(client, method)(url, **extra)
            assert response.status_code == 404, (name, method)
            assert world["project"].name.encode() not in response.content


@pytest.mark.parametrize("htmx", [False, True])
def test_viewer_reads_but_cannot_change(world, htmx):
    client = client_for(world["viewer"])
    extra = HTMX if htmx else {}
    for name, p in planner_patterns():
        if name in ACCOUNT_LEVEL:
            continue
        read, write = p.callback.project_capabilities
        url = url_for(name, p, world)
        get = client.get(url, **extra)
        if read == "view":
            assert get.status_code in (200, 302, 405), (name, get.status_code)
        else:
            assert get.status_code == 403, (name, "get")
        post = client.post(url, {"metric": "changed"}, **extra)
        if write == "view":
            assert post.status_code != 403, name
        else:
            assert post.status_code == 403, (name, "post", post.status_code)
    # and nothing changed
    criterion = world["objects"]["criterion"]
    criterion.refresh_from_db()
    assert criterion.metric == "sync latency"
    assert world["project"].memberships.count() == 2


def test_a_project_id_cannot_reach_another_projects_rows(world):
    """The row views look objects up inside the caller's project only."""
    other = ProjectFactory()
    client = client_for(other.owner)
    criterion = world["objects"]["criterion"]
    url = reverse("planner:criterion_edit", kwargs={"project_id": other.pk, "pk": criterion.pk})
    assert client.get(url).status_code == 404
    assert client.post(url, {f"criterion-{criterion.pk}-metric": "x"}).status_code == 404
