"""A run whose worker was killed as a whole is failed from its stale heartbeat without beat:
when the next worker starts and when someone starts a new run of the same connection.

The real-worker version (a worker killed with SIGKILL, the next one started) is in
test_run_reliability.py.
"""

from datetime import timedelta

import pytest
from celery.signals import worker_ready
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from planner.api.tokens import create_token
from planner.models import RunbookExport, RunStage, ValidationRun
from planner.runs import service as validation
from planner.runs import tasks as validation_tasks
from tests.factories import ConnectionFactory, configured
from tests.factories import csv_connection as build


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


STALE = 60


@pytest.fixture(autouse=True)
def stale_after(settings):
    settings.AETHON_RUN_STALE_SECONDS = STALE


@pytest.fixture
def published(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(validation, "dispatch", lambda run: sent.append(run.pk))
    return sent


@pytest.fixture
def later_reaps(monkeypatch):
    """The follow-up reap a starting worker queues, recorded instead of sent."""
    queued: list[dict] = []
    monkeypatch.setattr(
        validation_tasks.reap_stale_runs, "apply_async", lambda **kw: queued.append(kw)
    )
    return queued


def running(connection, *, beat_age: float, stage: str = "mapping") -> ValidationRun:
    """A run a worker claimed, whose last heartbeat is `beat_age` seconds old."""
    run = validation.start_validation_run(connection, None)
    ValidationRun.objects.filter(pk=run.pk).update(
        status="running",
        attempt=1,
        stage=stage,
        worker="elsewhere:4242",
        started_at=timezone.now() - timedelta(minutes=10),
        heartbeat_at=timezone.now() - timedelta(seconds=beat_age),
    )
    RunStage.objects.filter(run=run, name="connectivity").update(status="passed")
    RunStage.objects.filter(run=run, name=stage).update(status="running")
    run.refresh_from_db()
    return run


def assert_reaped(run: ValidationRun, stage_label: str = "mapping validation") -> None:
    run.refresh_from_db()
    assert run.status == "failed"
    assert f"stopped during the {stage_label} stage" in run.error
    assert "last heartbeat" in run.error and "Start a new run" in run.error
    assert run.finished_at is not None
    stages = {s.name: s.status for s in run.stages.all()}
    assert stages == {
        "connectivity": "passed",
        "schema": "skipped",
        "mapping": "failed",
        "reconciliation": "skipped",
    }


# ---------------------------------------------------------------------------------------------
# The next worker's start-up


def test_a_starting_worker_fails_the_runs_whose_heartbeat_went_stale(db, published, later_reaps):
    connection = build()
    dead = running(connection, beat_age=5 * 60)
    alive = running(configured(ConnectionFactory(project=connection.project)), beat_age=2)
    worker_ready.send(sender=None)  # what celery sends once a worker is up
    assert_reaped(dead)
    alive.refresh_from_db()
    assert alive.status == "running" and alive.error == ""
    # `alive` may belong to a worker killed a moment before this start: one more look once
    # its heartbeat could have gone stale.
    assert [q["countdown"] for q in later_reaps] == [STALE + 1]


def test_a_starting_worker_with_nothing_running_queues_nothing(db, published, later_reaps):
    dead = running(build(), beat_age=5 * 60)
    worker_ready.send(sender=None)
    assert_reaped(dead)
    assert later_reaps == []


def test_a_starting_worker_fails_runbook_exports_whose_worker_died(db, published, later_reaps):
    connection = build()
    project = connection.project
    dead = RunbookExport.objects.create(project=project, version_hash="a", status="running")
    alive = RunbookExport.objects.create(project=project, version_hash="b", status="running")
    done = RunbookExport.objects.create(project=project, version_hash="c", status="done")
    old = timezone.now() - timedelta(hours=1)
    RunbookExport.objects.filter(pk__in=[dead.pk, done.pk]).update(updated_at=old)
    worker_ready.send(sender=None)
    dead.refresh_from_db(), alive.refresh_from_db(), done.refresh_from_db()
    assert dead.status == "failed" and "its worker probably died" in dead.error
    assert (alive.status, done.status) == ("running", "done")


def test_a_failing_start_up_reap_does_not_stop_the_worker(db, monkeypatch, later_reaps):
    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(validation, "reap_stale_runs", broken)
    worker_ready.send(sender=None)  # logs, does not raise


# ---------------------------------------------------------------------------------------------
# The next start request (page and API)


def test_starting_from_the_page_fails_a_stale_active_run_and_starts_a_new_one(db, published):
    connection = build()
    dead = running(connection, beat_age=5 * 60)
    published.clear()
    client = signed_in(connection.project.owner)
    response = client.post(
        reverse("planner:run_start", args=[connection.project_id, connection.pk]),
        {"kind": "validation"},
    )
    new = ValidationRun.objects.exclude(pk=dead.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("planner:run_show", args=[new.project_id, new.pk])
    assert (new.status, published) == ("queued", [new.pk])
    assert_reaped(dead)


def test_starting_through_the_api_fails_a_stale_active_run_and_starts_a_new_one(db, published):
    connection = build()
    dead = running(connection, beat_age=5 * 60)
    published.clear()
    _, token = create_token(connection.project.owner, "ci")
    response = signed_in(connection.project.owner).post(
        f"/api/projects/{connection.project_id}/connections/{connection.pk}/runs",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["id"] != dead.pk and body["status"] == "queued"
    assert published == [body["id"]]
    assert_reaped(dead)


def test_a_start_while_the_active_run_is_alive_returns_that_run(db, published):
    connection = build()
    alive = running(connection, beat_age=STALE - 10)
    published.clear()
    project = connection.project
    page = signed_in(project.owner).post(
        reverse("planner:run_start", args=[project.pk, connection.pk]), {"kind": "validation"}
    )
    assert page["Location"] == reverse("planner:run_show", args=[project.pk, alive.pk])
    _, token = create_token(project.owner, "ci")
    api = signed_in(project.owner).post(
        f"/api/projects/{project.pk}/connections/{connection.pk}/runs",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert api.status_code == 202
    assert (api.json()["id"], api.json()["status"]) == (alive.pk, "running")
    assert ValidationRun.objects.count() == 1 and published == []
    alive.refresh_from_db()
    assert (alive.status, alive.error) == ("running", "")


def test_a_stale_run_of_another_kind_or_connection_is_left_to_the_reaper(db, published):
    connection = build()
    other = running(configured(ConnectionFactory(project=connection.project)), beat_age=5 * 60)
    validation.start_validation_run(connection, None)
    other.refresh_from_db()
    assert other.status == "running"  # the start request only clears its own way


# ---------------------------------------------------------------------------------------------
# Cancel


def test_cancelling_a_run_whose_worker_is_gone_ends_it_at_once(db, published):
    connection = build()
    dead = running(connection, beat_age=5 * 60)
    response = signed_in(connection.project.owner).post(
        reverse("planner:run_cancel", args=[connection.project_id, dead.pk]), follow=True
    )
    dead.refresh_from_db()
    assert (dead.status, dead.error) == ("cancelled", "Cancelled.")
    assert dead.stages.get(name="mapping").status == "skipped"
    assert "Cancelled." in response.content.decode()


def test_cancelling_a_live_run_leaves_it_to_its_worker(db, published):
    connection = build()
    alive = running(connection, beat_age=2)
    validation.cancel_run(alive)
    assert (alive.status, alive.cancel_requested) == ("running", True)
