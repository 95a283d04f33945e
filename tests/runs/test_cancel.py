"""Cancelling a run stuck inside a slow HTTP download stops it within seconds.

The default timeouts (30 s per read, 300 s per download) bound a download, but a user who
cancels must not wait for them: the request itself watches the run's stop signal.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection as db
from django.test import Client
from django.urls import reverse

from planner.connectors import GuardPolicy, open_connector
from planner.connectors.guard import Stopped, http_get
from planner.models import ValidationRun
from planner.runs import service as validation
from tests.connectors import MODES, SlowServer, loopback_only  # noqa: F401 - fixture
from tests.factories import CLEAN_SOURCE_CSV, CLEAN_TARGET_CSV
from tests.factories import csv_connection as build


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


POLICY = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}))  # default read/total timeouts


def wait_until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


# ---------------------------------------------------------------------------------------------
# The pinned HTTP request and the connector


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_request_stops_soon_after_should_stop_turns_true(mode):
    stop = threading.Event()
    with SlowServer(mode) as slow:
        timer = threading.Timer(0.5, stop.set)
        timer.start()
        started = time.monotonic()
        with pytest.raises(Stopped, match="stopped"):
            http_get(slow.url + "/customers", POLICY, should_stop=stop.is_set)
        took = time.monotonic() - started
    assert slow.requests == 1
    assert took < 2.0, f"{mode}: stopped only after {took:.1f}s"


def test_without_a_stop_signal_a_request_is_bounded_by_its_timeouts_as_before():
    with SlowServer("silent body") as slow:
        policy = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}), read_timeout=0.3)
        with pytest.raises(Exception, match="did not answer within 0.3s"):
            http_get(slow.url + "/customers", policy)


def test_the_http_connector_passes_its_stop_signal_to_every_page():
    stop = threading.Event()
    with SlowServer("trickle") as slow:
        connector = open_connector(
            "http_json", {"base_url": slow.url, "endpoint": "/customers"}, {}, POLICY
        )
        connector.should_stop = stop.is_set
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        with pytest.raises(Stopped):
            list(connector.fetch())
        assert time.monotonic() - started < 2.0


# ---------------------------------------------------------------------------------------------
# A whole run, executed as the worker executes it (heartbeat thread included)


def _execute(run_id: int) -> None:
    try:
        validation.execute_run(run_id)
    finally:
        db.close()  # this thread's own database connection


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", MODES)
def test_cancelling_a_run_stuck_in_a_slow_download_ends_it_within_seconds(
    settings, monkeypatch, mode
):
    # The shipped defaults: 5 s heartbeat, 30 s read timeout, 300 s per download.
    assert settings.AETHON_CONNECTOR_GUARD["total_timeout"] >= 300
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    connection = build(CLEAN_SOURCE_CSV, CLEAN_TARGET_CSV)
    with SlowServer(mode) as slow:
        endpoint = connection.source.endpoint
        endpoint.kind, endpoint.upload, endpoint.upload_name = "http_json", "", ""
        endpoint.config = {"base_url": slow.url}
        endpoint.dataset = "/customers"
        endpoint.save()
        run = validation.start_validation_run(connection, connection.project.owner)
        worker = threading.Thread(target=_execute, args=(run.pk,), daemon=True)
        worker.start()
        try:
            wait_until(lambda: slow.requests >= 1)  # the run is inside the download
            time.sleep(1)
            assert ValidationRun.objects.get(pk=run.pk).status == "running"
            client = signed_in(connection.project.owner)
            asked = time.monotonic()
            response = client.post(
                reverse("planner:run_cancel", args=[connection.project_id, run.pk])
            )
            assert response.status_code == 302
            worker.join(timeout=10)
            took = time.monotonic() - asked
        finally:
            slow.stop.set()  # a failing test must not leave the run downloading
            worker.join(timeout=60)
    assert took < 5, f"{mode}: the run stopped {took:.1f}s after the cancel"
    run.refresh_from_db()
    assert (run.status, run.error, run.cancel_requested) == ("cancelled", "Cancelled.", True)
    connectivity = run.stages.get(name="connectivity")
    assert (connectivity.status, connectivity.error) == ("skipped", "Cancelled.")
    assert {s.status for s in run.stages.all()} == {"skipped"}
