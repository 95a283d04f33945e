"""Validation runs executed in-process: stages, figures, idempotency, cancel, reaper, views.

The Celery side (a real worker over Redis, killed mid-run) is in test_worker_reliability.py.
"""

import csv
import io
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from planner.models import RunSchedule, RunStage, System, TestCase, ValidationRun
from planner.runs import service as validation
from planner.runs.schedules import entry_name
from planner.runs.tasks import scheduled_validation
from tests.conftest import HTMX, client_for
from tests.connectors import Reply, serve
from tests.factories import (
    CLEAN_SOURCE_CSV,
    CLEAN_TARGET_CSV,
    ConnectionFactory,
    FieldMappingFactory,
    MembershipFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
    TestCaseFactory,
    configured,
    csv_connection,
    run_now,
)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def published(monkeypatch):
    """Record what would be sent to the broker instead of sending it."""
    sent: list[int] = []
    monkeypatch.setattr(validation, "dispatch", lambda run: sent.append(run.pk))
    return sent


def stage(run, name) -> RunStage:
    return run.stages.get(name=name)


def test_a_run_reports_every_stage_with_figures_and_examples(db, published):
    run = run_now(csv_connection(), published)
    assert run.status == ValidationRun.Status.FAILED
    assert [(s.name, s.status) for s in run.stages.all()] == [
        ("connectivity", "passed"),
        ("schema", "passed"),
        ("mapping", "failed"),
        ("reconciliation", "failed"),
    ]
    sides = stage(run, "connectivity").figures["sides"]
    assert [(s["role"], s["system"], s["ok"], s["fields"]) for s in sides] == [
        ("source", "CRM", True, 4),
        ("target", "Billing", True, 3),
    ]
    mapped = stage(run, "mapping")
    assert mapped.figures["records"] == 4
    assert mapped.figures["violations"] == 1
    by_field = {f["target"]: f["violations"] for f in mapped.figures["by_field"]}
    assert by_field == {"id": {}, "active": {"unmapped_value": 1}, "email": {}}
    assert mapped.examples == [
        {"field": "active", "reason": "unmapped_value", "key": 3, "value": "pending"}
    ]
    rec = stage(run, "reconciliation").figures
    assert (rec["source_count"], rec["target_count"], rec["matched_count"]) == (4, 4, 3)
    assert (rec["equal_count"], rec["mismatched_count"]) == (2, 1)
    assert rec["missing_in_target"] == [{"id": 4}]
    assert rec["extra_in_target"] == [{"id": 5}]
    assert rec["mismatch_counts"] == {"active": 0, "email": 1}
    assert stage(run, "reconciliation").examples == [
        {
            "key": {"id": 2},
            "field": "email",
            "source": "grace@example.com",
            "target": "grace@example.org",
        }
    ]
    assert run.summary["violations"] == 1
    assert (run.summary["missing"], run.summary["extra"], run.summary["mismatched"]) == (1, 1, 1)
    assert "Mapping validation: 1 violation(s)" in run.error
    assert run.records_done == 8 and run.records_total == 8
    # The full list of differences, downloadable.
    rows = list(csv.DictReader(io.StringIO(run.differences_file.read().decode())))
    assert sorted((r["status"], r["id"], r["field"]) for r in rows) == [
        ("extra_in_target", "5", ""),
        ("mismatch", "2", "email"),
        ("missing_in_target", "4", ""),
    ]


def test_a_clean_connection_passes(db, published):
    run = run_now(csv_connection(CLEAN_SOURCE_CSV, CLEAN_TARGET_CSV), published)
    assert run.status == ValidationRun.Status.PASSED, run.error
    assert {s.status for s in run.stages.all()} == {"passed"}
    assert run.summary["agreement_pct"] == 100.0
    assert not run.differences_file
    assert run.error == ""


def test_the_schema_check_names_missing_fields_and_types_that_do_not_fit(db, published):
    connection = csv_connection(CLEAN_SOURCE_CSV, "id,active,email\n1,yes,a@b.c\n")
    FieldMappingFactory(
        project=connection.project,
        connection=connection,
        source_field="name",
        target_field="full_name",
        rule="trim",
    )
    run = run_now(connection, published)
    schema = stage(run, "schema")
    assert schema.status == "failed"
    source, target = schema.figures["sides"]
    assert source["missing"] == ["name"]
    assert target["missing"] == ["full_name"]
    assert target["type_issues"] == []  # a text column stores any value
    assert "Source (CRM) has no field(s) name" in schema.error
    # The field the source lacks is reported, the others are still validated.
    mapped = stage(run, "mapping")
    assert mapped.figures["not_validated"] == [
        {"field": "full_name", "error": "source has no name"}
    ]
    assert mapped.figures["fields_validated"] == 3


def test_a_target_column_of_the_wrong_type_fails_the_schema_check(db, published):
    # 'email' is mapped as text, but the target column holds integers; 'active' (integer)
    # into a decimal column is fine.
    connection = csv_connection(CLEAN_SOURCE_CSV, "id,active,email\n1,1.5,3\n")
    run = run_now(connection, published)
    schema = stage(run, "schema")
    assert schema.status == "failed"
    assert schema.figures["sides"][1]["type_issues"] == [
        {"field": "email", "declared": "string", "actual": "integer"}
    ]
    assert "Target (Billing): email is integer, the mapping says string" in schema.error


def test_settings_removed_while_a_run_waits_fail_connectivity_and_later_stages_say_why(
    db, published
):
    project = ProjectFactory()
    source = SystemFactory(project=project, name="CRM")
    SystemEndpointFactory(system=source, csv=CLEAN_SOURCE_CSV)
    target = SystemFactory(project=project, name="Billing")
    removed = SystemEndpointFactory(system=target, csv=CLEAN_SOURCE_CSV)
    connection = ConnectionFactory(project=project, source=source, target=target)
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="id",
        target_field="id",
        rule="identity",
    )
    run = validation.start_validation_run(connection, project.owner)
    removed.delete()
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    conn = stage(run, "connectivity")
    assert conn.status == "failed"
    assert "Billing has no connection settings yet" in conn.error
    assert conn.figures["sides"][0]["ok"] is True  # the source still reports
    assert stage(run, "mapping").status == "passed"  # needs only the source
    rec = stage(run, "reconciliation")
    assert rec.status == "skipped" and "Billing" in rec.error


def test_a_system_that_times_out_fails_its_stage_and_the_other_still_reports(
    db, published, settings
):
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    settings.AETHON_CONNECTOR_GUARD = {**settings.AETHON_CONNECTOR_GUARD, "read_timeout": 0.3}
    connection = csv_connection(CLEAN_SOURCE_CSV, CLEAN_TARGET_CSV)
    with serve(lambda req: Reply(body=[{"id": 1}], delay=1.5)) as slow:
        endpoint = connection.source.endpoint
        endpoint.kind, endpoint.upload, endpoint.upload_name = "http_json", "", ""
        endpoint.config = {"base_url": slow.url}
        endpoint.dataset = "/customers"
        endpoint.save()
        run = run_now(connection, published)
    conn = stage(run, "connectivity")
    assert conn.status == "failed"
    source, target = conn.figures["sides"]
    assert not source["ok"] and "did not answer within 0.3s" in source["error"]
    assert target["ok"] and target["fields"] == 3
    assert stage(run, "schema").figures["sides"][1]["checked"] is True
    assert stage(run, "mapping").status == "skipped"
    assert stage(run, "reconciliation").status == "skipped"
    assert run.status == "failed" and "did not answer within 0.3s" in run.error


def test_a_parallel_run_compares_old_output_with_new(db, published):
    connection = csv_connection(CLEAN_SOURCE_CSV, CLEAN_TARGET_CSV)
    with pytest.raises(validation.RunRefused, match="old process's output"):
        validation.start_validation_run(connection, None, kind="parallel")
    old = SystemFactory(project=connection.project, name="Legacy sync output")
    SystemEndpointFactory(
        system=old, csv="id,active,email\n1,1,ada@example.com\n2,1,grace@example.com\n"
    )
    RunSchedule.objects.create(project=connection.project, connection=connection, baseline=old)
    run = run_now(connection, published, kind="parallel")
    assert [s.name for s in run.stages.all()] == ["connectivity", "schema", "parallel"]
    par = stage(run, "parallel")
    assert par.status == "failed"
    assert par.figures["mismatch_counts"] == {"active": 1, "email": 0}
    assert par.examples[0]["key"] == {"id": 2}
    assert (par.examples[0]["source"], par.examples[0]["target"]) == ("1", "0")
    assert run.baseline == old


def test_one_active_run_per_connection_and_kind(db, published):
    connection = csv_connection()
    first = validation.start_validation_run(connection, None)
    again = validation.start_validation_run(connection, None)
    assert again.pk == first.pk
    assert published == [first.pk]


# ---------------------------------------------------------------------------------------------
# Idempotency, redelivery, cancel, reaper


def test_a_repeated_delivery_never_duplicates_results(db, published, media):
    run = run_now(csv_connection(), published)
    figures = {s.name: (s.status, s.figures) for s in run.stages.all()}
    assert validation.execute_run(run.pk, heartbeat=False) is None  # finished: nothing to do
    run.refresh_from_db()
    assert run.stages.count() == 4
    assert {s.name: (s.status, s.figures) for s in run.stages.all()} == figures
    # Even a forced re-execution replaces the stage rows and the file instead of adding.
    ValidationRun.objects.filter(pk=run.pk).update(status="queued")
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    assert run.attempt == 2
    assert run.stages.count() == 4
    files = list((media / "private" / "runs" / str(run.project_id)).iterdir())
    assert [f.name for f in files] == [f"run-{run.pk}-differences.csv"]


def test_a_redelivery_after_the_worker_process_died_fails_the_run_with_the_reason(db, published):
    connection = csv_connection()
    run = validation.start_validation_run(connection, None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ValidationRun.objects.filter(pk=run.pk).update(
        status="running",
        attempt=1,
        stage="mapping",
        heartbeat_at=timezone.now(),
        worker=f"{validation.socket.gethostname()}:{dead.pid}",
    )
    RunStage.objects.filter(run=run, name="mapping").update(status="running")
    assert validation.execute_run(run.pk, heartbeat=False) is None  # not run a second time
    run.refresh_from_db()
    assert (run.status, run.attempt) == ("failed", 1)
    assert "stopped during the mapping validation stage" in run.error
    assert stage(run, "mapping").status == "failed"
    assert stage(run, "reconciliation").status == "skipped"


def test_a_duplicate_delivery_while_the_first_is_alive_changes_nothing(db, published):
    run = validation.start_validation_run(csv_connection(), None)
    ValidationRun.objects.filter(pk=run.pk).update(
        status="running",
        attempt=1,
        heartbeat_at=timezone.now(),
        worker=f"{validation.socket.gethostname()}:{os.getpid()}",
    )
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    assert (run.status, run.attempt) == ("running", 1)


def test_the_reaper_fails_runs_whose_heartbeat_went_stale(db, published, settings):
    settings.AETHON_RUN_STALE_SECONDS = 60
    connection = csv_connection()
    stale = validation.start_validation_run(connection, None)
    fresh = validation.start_validation_run(connection, None, kind="validation")
    assert fresh.pk == stale.pk  # one active per kind: make a second connection instead
    other = configured(ConnectionFactory(project=connection.project))
    fresh = validation.start_validation_run(other, None)
    now = timezone.now()
    ValidationRun.objects.filter(pk=stale.pk).update(
        status="running", attempt=1, stage="reconciliation", heartbeat_at=now - timedelta(minutes=5)
    )
    ValidationRun.objects.filter(pk=fresh.pk).update(
        status="running", attempt=1, heartbeat_at=now - timedelta(seconds=10)
    )
    assert validation.reap_stale_runs() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == "failed"
    assert "stopped during the reconciliation stage" in stale.error
    assert "last heartbeat" in stale.error
    assert fresh.status == "running"


def test_the_reaper_runs_every_minute_from_the_database_schedule(db):
    entry = PeriodicTask.objects.get(task="planner.validation_tasks.reap_stale_runs")
    assert entry.enabled and entry.interval.every == 60 and entry.interval.period == "seconds"


def test_cancelling_a_queued_run_ends_it_and_the_worker_skips_it(db, published):
    run = validation.start_validation_run(csv_connection(), None)
    validation.cancel_run(run)
    assert run.status == "cancelled"
    assert validation.execute_run(run.pk, heartbeat=False) is None
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert {s.status for s in run.stages.all()} == {"skipped"}


def test_cancelling_a_running_run_stops_it_at_the_next_checkpoint(db, published, monkeypatch):
    run = validation.start_validation_run(csv_connection(), None)
    real_claim = validation.claim

    def claim_then_cancel(run_id, task_id=""):
        claimed = real_claim(run_id, task_id)
        validation.cancel_run(claimed)
        return claimed

    monkeypatch.setattr(validation, "claim", claim_then_cancel)
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.cancel_requested
    assert stage(run, "connectivity").status in ("passed", "skipped")
    assert stage(run, "reconciliation").status == "skipped"


def test_a_crash_inside_a_stage_fails_that_stage_only(db, published, monkeypatch):
    from planner.runs import stages as validation_stages

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    from planner.runs import streamed

    # The run loads its stages when it executes, so the stage is replaced where it lives:
    # both ways of computing it (CSV files stream; whole tables go through mapping()).
    monkeypatch.setattr(validation_stages, "mapping", boom)
    monkeypatch.setattr(streamed, "streamed_validation", boom)
    run = run_now(csv_connection(), published)
    assert stage(run, "connectivity").status == "passed"
    assert stage(run, "mapping").status == "failed"
    assert stage(run, "mapping").error == "RuntimeError: disk on fire"
    assert stage(run, "reconciliation").status == "skipped"


def test_a_failed_run_changes_nothing_else(db, published):
    connection = csv_connection()
    project = connection.project
    before = {m.pk: (m.version, m.rule) for m in connection.field_mappings.all()} | {
        "endpoint": connection.source.endpoint.version
    }
    histories = sum(m.history.count() for m in connection.field_mappings.all())
    run = run_now(connection, published)
    assert run.status == "failed"
    after = {m.pk: (m.version, m.rule) for m in connection.field_mappings.all()} | {
        "endpoint": connection.source.endpoint.__class__.objects.get(
            pk=connection.source.endpoint.pk
        ).version
    }
    assert after == before
    assert sum(m.history.count() for m in connection.field_mappings.all()) == histories
    assert project.test_cases.count() == 0


# ---------------------------------------------------------------------------------------------
# Pages


def test_runs_page_lists_systems_connections_and_runs_with_trend(db, published):
    connection = csv_connection()
    run_now(connection, published)
    client = client_for(connection.project.owner)
    html = client.get(reverse("planner:runs", args=[connection.project_id])).content.decode()
    assert "CSV / JSON / XLSX file (upload)" in html
    assert "#1 Validation" in html  # numbered within the project
    assert "<svg" in html and '<circle class="failed"' in html
    assert "Run validation" in html


@pytest.mark.parametrize("configured", [(), ("CRM",)])
def test_run_validation_is_disabled_and_refused_without_connection_settings(
    db, published, configured
):
    project = ProjectFactory()
    crm = SystemFactory(project=project, name="CRM")
    billing = SystemFactory(project=project, name="Billing")
    for system in (crm, billing):
        if system.name in configured:
            SystemEndpointFactory(system=system, csv=CLEAN_SOURCE_CSV)
    connection = ConnectionFactory(project=project, source=crm, target=billing)
    missing = "Billing has" if configured else "CRM and Billing have"
    client = client_for(project.owner)
    html = client.get(reverse("planner:runs", args=[project.pk])).content.decode()
    card = html[html.index(f'id="connection-{connection.pk}"') :].split('class="connection-card"')[
        0
    ]
    assert f"{missing} no connection settings yet" in card
    assert (
        f'<button class="btn primary" type="submit" disabled '
        f'aria-describedby="not-runnable-{connection.pk}">Run validation</button>' in card
    )
    # The POST (a stale page, a crafted request) and the API refuse too, and create nothing.
    response = client.post(
        reverse("planner:run_start", args=[project.pk, connection.pk]), {"kind": "validation"}
    )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert f"{missing} no connection settings yet" in page
    with pytest.raises(validation.RunRefused, match="no connection settings"):
        validation.start_validation_run(connection, project.owner)
    assert not ValidationRun.objects.exists() and published == []


def test_a_configured_connection_offers_run_validation(db, published):
    connection = csv_connection()
    html = (
        client_for(connection.project.owner)
        .get(reverse("planner:runs", args=[connection.project_id]))
        .content.decode()
    )
    assert 'data-testid="not-runnable"' not in html
    assert '<button class="btn primary" type="submit">Run validation</button>' in html


def test_starting_a_run_from_the_page_queues_it_and_shows_live_progress(db, published):
    connection = csv_connection()
    client = client_for(connection.project.owner)
    response = client.post(
        reverse("planner:run_start", args=[connection.project_id, connection.pk]),
        {"kind": "validation"},
    )
    run = connection.validation_runs.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "planner:run_show", args=[connection.project_id, run.pk]
    )
    assert published == [run.pk]
    assert run.triggered_by == connection.project.owner and run.trigger == "ui"
    progress = reverse("planner:run_progress", args=[connection.project_id, run.pk])
    live = client.get(progress, **HTMX).content.decode()
    assert 'hx-trigger="every 1s"' in live and "Queued" in live
    validation.execute_run(run.pk, heartbeat=False)
    done = client.get(progress, **HTMX).content.decode()
    assert "hx-trigger" not in done  # polling stops once the run is over
    assert "Failed" in done and "grace@example.org" in done
    page = client.get(reverse("planner:run_show", args=[connection.project_id, run.pk]))
    assert b"Download every difference (CSV)" in page.content


def test_a_bad_kind_of_run_is_refused_with_a_message(db, published):
    connection = csv_connection()
    client = client_for(connection.project.owner)
    url = reverse("planner:run_start", args=[connection.project_id, connection.pk])
    response = client.post(url, {"kind": "nonsense"}, follow=True)
    assert b"Kind of run: choose one of" in response.content
    response = client.post(url, {"kind": "parallel"}, follow=True)
    assert b"choose the system holding the old output" in response.content
    assert not ValidationRun.objects.exists()


def test_cancel_view_and_progress_while_running(db, published):
    connection = csv_connection()
    client = client_for(connection.project.owner)
    run = validation.start_validation_run(connection, None)
    ValidationRun.objects.filter(pk=run.pk).update(
        status="running",
        attempt=1,
        stage="mapping",
        records_done=1234,
        records_total=5000,
        rate=2500.0,
        heartbeat_at=timezone.now(),
        started_at=timezone.now(),
    )
    live = client.get(
        reverse("planner:run_progress", args=[connection.project_id, run.pk]), **HTMX
    ).content.decode()
    assert "Mapping validation…" in live
    assert "<strong>1234</strong> of 5000 records read" in live
    assert "2500 records/s" in live and 'aria-valuenow="25"' in live
    response = client.post(
        reverse("planner:run_cancel", args=[connection.project_id, run.pk]), **HTMX
    )
    assert b"cancelling" in response.content
    run.refresh_from_db()
    assert run.cancel_requested and run.status == "running"


def test_differences_download_is_the_full_csv(db, published):
    connection = csv_connection()
    run = run_now(connection, published)
    client = client_for(connection.project.owner)
    response = client.get(reverse("planner:run_differences", args=[connection.project_id, run.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}-differences.csv"'
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[0] == "status,id,field,source_value,target_value"
    assert len(body.splitlines()) == 4


def test_linking_a_run_as_evidence_of_a_test_case(db, published):
    connection = csv_connection()
    run = run_now(connection, published)
    case = TestCaseFactory(project=connection.project, evidence_note="")
    assert not case.has_evidence
    client = client_for(connection.project.owner)
    url = reverse("planner:run_link", args=[connection.project_id, run.pk])
    client.post(url, {"test_case": case.pk})
    case.refresh_from_db()
    assert case.validation_run == run and case.has_evidence
    page = client.get(reverse("planner:run_show", args=[connection.project_id, run.pk]))
    assert f"Step 4 test case: {case}".encode() in page.content
    assert (
        client.post(url, {"test_case": "x"}, follow=True).content.count(b"Test case: choose") == 1
    )
    other = TestCaseFactory()
    assert client.post(url, {"test_case": other.pk}).status_code == 404
    client.post(url, {"unlink": case.pk})
    case.refresh_from_db()
    assert case.validation_run is None


def test_viewers_see_runs_but_cannot_start_or_cancel(db, published):
    connection = csv_connection()
    run = run_now(connection, published)
    viewer = client_for(MembershipFactory(project=connection.project, role="viewer").user)
    page = viewer.get(reverse("planner:runs", args=[connection.project_id])).content.decode()
    assert "Run validation" not in page
    assert (
        viewer.get(reverse("planner:run_show", args=[connection.project_id, run.pk])).status_code
        == 200
    )
    start = reverse("planner:run_start", args=[connection.project_id, connection.pk])
    assert viewer.post(start, {"kind": "validation"}).status_code == 403
    assert ValidationRun.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# Schedules


def test_a_schedule_becomes_a_database_beat_entry(db, published):
    connection = csv_connection()
    client = client_for(connection.project.owner)
    url = reverse("planner:run_schedule", args=[connection.project_id, connection.pk])
    prefix = f"schedule-{connection.pk}-"
    client.post(url, {prefix + "every": "hourly", prefix + "baseline": ""})
    entry = PeriodicTask.objects.get(name=entry_name(connection.pk))
    assert entry.task == "planner.validation_tasks.scheduled_validation"
    assert json.loads(entry.kwargs) == {"connection_id": connection.pk}
    assert (entry.interval.every, entry.interval.period) == (1, "hours")
    schedule = RunSchedule.objects.get(connection=connection)
    client.post(url, {prefix + "every": "daily", prefix + "expected_version": schedule.version})
    entry.refresh_from_db()
    assert entry.interval.period == "days"
    schedule.refresh_from_db()
    client.post(url, {prefix + "every": "off", prefix + "expected_version": schedule.version})
    assert not PeriodicTask.objects.filter(name=entry_name(connection.pk)).exists()
    bad = client.post(url, {prefix + "every": "weekly"}, follow=True)
    assert b"Scheduled validation: Select a valid choice" in bad.content


def test_the_scheduled_task_starts_a_run_and_forgets_deleted_connections(db, published):
    connection = csv_connection()
    schedule = RunSchedule.objects.create(
        project=connection.project, connection=connection, every="hourly"
    )
    from planner.runs.schedules import sync_schedule

    sync_schedule(schedule)
    run_id = scheduled_validation(connection.pk)
    run = ValidationRun.objects.get(pk=run_id)
    assert (run.trigger, run.triggered_by) == ("schedule", None)
    pk = connection.pk
    System.objects.filter(pk=connection.source_id).delete()  # deletes the connection too
    assert scheduled_validation(pk) is None
    assert not PeriodicTask.objects.filter(name=entry_name(pk)).exists()


def test_step4_shows_the_linked_run(db, published):
    connection = csv_connection()
    run = run_now(connection, published)
    case = TestCaseFactory(project=connection.project)
    TestCase.objects.filter(pk=case.pk).update(validation_run=run)
    client = client_for(connection.project.owner)
    html = client.get(reverse("planner:step", args=[connection.project_id, 4])).content.decode()
    assert reverse("planner:run_show", args=[connection.project_id, run.pk]) in html


def test_step6_shows_the_latest_run_and_schedule_of_each_connection(db, published):
    connection = csv_connection()
    run = run_now(connection, published)
    RunSchedule.objects.create(project=connection.project, connection=connection, every="daily")
    client = client_for(connection.project.owner)
    html = client.get(reverse("planner:step", args=[connection.project_id, 6])).content.decode()
    section = html[html.index('data-testid="validation-evidence"') :]
    assert reverse("planner:run_show", args=[connection.project_id, run.pk]) in section
    assert "Daily" in section and "failed" in section


def test_the_time_limit_ends_the_whole_run_with_the_reason(db, published, monkeypatch, settings):
    from celery.exceptions import SoftTimeLimitExceeded

    settings.AETHON_RUN_TIME_LIMIT = 3600

    def too_slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    from planner.runs import stages as validation_stages
    from planner.runs import streamed

    monkeypatch.setattr(validation_stages, "mapping", too_slow)
    monkeypatch.setattr(streamed, "streamed_validation", too_slow)
    run = run_now(csv_connection(), published)
    assert run.status == "failed"
    assert run.error == "The run took longer than its time limit (3,600 s, AETHON_RUN_TIME_LIMIT)."
    assert stage(run, "mapping").status == "failed"
    assert stage(run, "reconciliation").status == "skipped"  # not attempted after the limit


def test_a_task_for_a_run_not_yet_committed_retries_instead_of_dropping_it(db, published):
    from celery.exceptions import MaxRetriesExceededError

    from planner.runs.tasks import run_validation

    missing = run_validation.apply(args=[999_999])
    assert isinstance(missing.result, MaxRetriesExceededError)  # retried, then gave up
    run = validation.start_validation_run(csv_connection(CLEAN_SOURCE_CSV, CLEAN_TARGET_CSV), None)
    assert run_validation.apply(args=[run.pk]).successful()
    run.refresh_from_db()
    assert run.status == "passed" and run.celery_task_id
