"""Freshness through the API: settings and a criterion's measurement read by members,
"Measure now" for editors only, refusals as on the pages."""

from datetime import UTC, datetime

import pytest
from django.test import Client

from planner.api.tokens import create_token
from planner.models import FreshnessState, MetricKey, Role, SliPoint
from planner.runs import freshness
from planner.task_queue import QueueUnreachable
from tests.factories import (
    ConnectionFactory,
    CriterionFactory,
    FreshnessSettingsFactory,
    MembershipFactory,
    UserFactory,
)

API = "/api"


def bearer(user) -> dict:
    _, raw = create_token(user, "ci")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def world(db, monkeypatch):
    sent = []
    monkeypatch.setattr(freshness, "publish", lambda task, *args: sent.append(args))
    settings = FreshnessSettingsFactory(connection=ConnectionFactory(), skew_seconds=30)
    project = settings.connection.project
    criterion = CriterionFactory(
        project=project,
        metric_key=MetricKey.FRESHNESS,
        freshness_connection=settings.connection,
        target=5,
        unit="minutes",
    )
    return {"project": project, "criterion": criterion, "settings": settings, "sent": sent}


def urls(w):
    p, c = w["project"].pk, w["criterion"].pk
    return [
        ("get", f"{API}/projects/{p}/freshness-settings"),
        ("get", f"{API}/projects/{p}/criteria/{c}/freshness"),
        ("post", f"{API}/projects/{p}/criteria/{c}/freshness/measure"),
    ]


def test_a_non_member_gets_404_and_a_viewer_cannot_measure(world):
    outsider = bearer(UserFactory())
    viewer = bearer(MembershipFactory(project=world["project"], role=Role.VIEWER).user)
    client = Client()
    for method, url in urls(world):
        assert getattr(client, method)(url, **outsider).status_code == 404, url
        assert getattr(client, method)(url).status_code == 401, url
        expected = 403 if method == "post" else 200
        assert getattr(client, method)(url, **viewer).status_code == expected, url
    assert world["sent"] == []


def test_settings_and_the_latest_measurement_are_read(world):
    client, headers = Client(), bearer(world["project"].owner)
    p, c = world["project"].pk, world["criterion"]
    settings = client.get(f"{API}/projects/{p}/freshness-settings", **headers).json()
    assert settings == [
        {
            "connection_id": world["settings"].connection_id,
            "connection": str(world["settings"].connection),
            "basis": "changed",
            "source_time_field": "updated_at",
            "target_time_field": "synced_at",
            "skew_seconds": 30,
            "overlap_seconds": 300,
        }
    ]
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    SliPoint.objects.create(criterion=c, at=at, good=9, total=10, lag_p95=42.5, late_now=1)
    FreshnessState.objects.create(
        criterion=c, measured_at=at, figures={"share_within_pct": 90.0}, pending=3
    )
    body = client.get(f"{API}/projects/{p}/criteria/{c.pk}/freshness", **headers).json()
    assert body["measurable"] is True and body["every_minutes"] == 1
    assert (body["pending"], body["share_within_pct"]) == (3, 90.0)
    assert body["latest"]["good"] == 9 and body["latest"]["lag_p95"] == 42.5


def test_measure_now_queues_for_an_editor_and_refuses_what_cannot_be_measured(world, monkeypatch):
    editor = bearer(MembershipFactory(project=world["project"], role=Role.EDITOR).user)
    client, p, c = Client(), world["project"].pk, world["criterion"].pk
    url = f"{API}/projects/{p}/criteria/{c}/freshness/measure"
    response = client.post(url, **editor)
    assert response.status_code == 202 and world["sent"] == [(c,)]
    other = CriterionFactory(project=world["project"], metric_key=MetricKey.AGREEMENT)
    response = client.post(f"{API}/projects/{p}/criteria/{other.pk}/freshness/measure", **editor)
    assert response.status_code == 400
    assert "not measured by propagation lag" in response.json()["detail"]

    def down(task, *args):
        raise QueueUnreachable("refused")

    monkeypatch.setattr(freshness, "publish", down)
    response = client.post(url, **editor)
    assert response.status_code == 400
    assert response.json()["detail"] == "The task queue is unreachable: no worker can measure now."
