"""Freshness on the pages: the fields per connection (step 2), a propagation-lag criterion
(step 1) with its beat entry, its page and "Measure now" — and who may do what."""

import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from planner.models import FreshnessSettings, FreshnessState, MetricKey, Role, SliPoint
from planner.runs import freshness
from planner.runs.freshness_schedule import entry_name
from planner.task_queue import QueueUnreachable
from tests.conftest import HTMX
from tests.factories import ConnectionFactory, CriterionFactory, FreshnessSettingsFactory


def criterion_data(connection, prefix="add-criterion", **overrides):
    data = {
        f"{prefix}-metric": "new contacts in the marketing tool",
        f"{prefix}-metric_key": MetricKey.FRESHNESS,
        f"{prefix}-comparator": "<=",
        f"{prefix}-target": "5",
        f"{prefix}-unit": "minutes",
        f"{prefix}-attainment_pct": "99.9",
        f"{prefix}-window_value": "30",
        f"{prefix}-window_unit": "days",
        f"{prefix}-freshness_connection": connection.pk if connection else "",
        f"{prefix}-measure_every_minutes": "",
    }
    data.update({f"{prefix}-{k}": v for k, v in overrides.items()})
    return data


def entry(criterion_id):
    return PeriodicTask.objects.filter(name=entry_name(criterion_id)).first()


def add_criterion(client, project, data):
    return client.post(reverse("planner:criterion_add", args=[project.pk]), data, **HTMX)


def test_a_freshness_criterion_needs_a_connection_with_freshness_fields(project, owner_client):
    connection = ConnectionFactory(project=project)
    html = add_criterion(owner_client, project, criterion_data(None)).content.decode()
    assert "Propagation lag is measured on a connection: pick one." in html
    html = add_criterion(owner_client, project, criterion_data(connection)).content.decode()
    assert f"{connection} has no freshness fields yet" in html
    FreshnessSettingsFactory(connection=connection)
    html = add_criterion(owner_client, project, criterion_data(connection, unit="%")).content
    assert b"Propagation lag is a duration: state the target in seconds" in html
    html = add_criterion(
        owner_client, project, criterion_data(connection, measure_every_minutes=90)
    )
    assert b"Measure between every minute and every 60 minutes." in html.content
    other = ConnectionFactory()  # another project's connection cannot be chosen
    html = add_criterion(owner_client, project, criterion_data(other)).content
    assert b"Select a valid choice" in html
    assert not project.criteria.exists()
    assert not PeriodicTask.objects.filter(name__startswith="aethon: measure freshness").exists()


def test_another_figure_names_no_connection(project, owner_client):
    connection = ConnectionFactory(project=project)
    FreshnessSettingsFactory(connection=connection)
    data = criterion_data(connection, metric_key=MetricKey.AGREEMENT, unit="%", target="99")
    html = add_criterion(owner_client, project, data).content
    assert b"Only a criterion measured by propagation lag names a connection here." in html


def test_the_beat_entry_is_created_changed_and_removed_with_the_criterion(project, owner_client):
    connection = ConnectionFactory(project=project)
    FreshnessSettingsFactory(connection=connection)
    add_criterion(owner_client, project, criterion_data(connection))
    c = project.criteria.get()
    task = entry(c.pk)
    assert task.task == "planner.freshness_tasks.measure"
    assert json.loads(task.kwargs) == {"criterion_id": c.pk}
    assert (task.interval.every, task.interval.period) == (1, "minutes")  # 5-minute target

    edit = reverse("planner:criterion_edit", args=[project.pk, c.pk])
    prefix = f"criterion-{c.pk}"
    data = criterion_data(connection, prefix, target="2", unit="hours")
    owner_client.post(edit, {**data, f"{prefix}-expected_version": c.version}, **HTMX)
    assert entry(c.pk).interval.every == 24  # a fifth of 2 hours
    c.refresh_from_db()
    data = criterion_data(connection, prefix, measure_every_minutes="7")
    owner_client.post(edit, {**data, f"{prefix}-expected_version": c.version}, **HTMX)
    assert entry(c.pk).interval.every == 7

    c.refresh_from_db()
    data = criterion_data(
        None, prefix, metric_key=MetricKey.AGREEMENT, unit="%", target="99", freshness_connection=""
    )
    owner_client.post(edit, {**data, f"{prefix}-expected_version": c.version}, **HTMX)
    c.refresh_from_db()
    assert c.metric_key == MetricKey.AGREEMENT
    assert entry(c.pk) is None

    add_criterion(owner_client, project, criterion_data(connection))
    c2 = project.criteria.get(metric_key=MetricKey.FRESHNESS)
    assert entry(c2.pk) is not None
    owner_client.post(reverse("planner:criterion_delete", args=[project.pk, c2.pk]), **HTMX)
    assert entry(c2.pk) is None


def test_removing_the_connections_fields_stops_its_measurements(project, owner_client):
    settings = FreshnessSettingsFactory(connection=ConnectionFactory(project=project))
    add_criterion(owner_client, project, criterion_data(settings.connection))
    c = project.criteria.get()
    assert entry(c.pk) is not None
    owner_client.post(reverse("planner:freshness_delete", args=[project.pk, settings.pk]), **HTMX)
    assert entry(c.pk) is None


def settings_data(connection, **overrides):
    data = {
        "add-freshness-connection": connection.pk,
        "add-freshness-basis": "changed",
        "add-freshness-source_time_field": "updated_at",
        "add-freshness-target_time_field": "synced_at",
        "add-freshness-skew_seconds": "30",
        "add-freshness-overlap_seconds": "300",
    }
    data.update({f"add-freshness-{k}": v for k, v in overrides.items()})
    return data


def test_freshness_fields_are_set_on_step_2_once_per_connection(project, owner_client):
    connection = ConnectionFactory(project=project)
    url = reverse("planner:freshness_add", args=[project.pk])
    html = owner_client.post(url, settings_data(connection, target_time_field=""), **HTMX)
    assert b"This field is required." in html.content
    html = owner_client.post(url, settings_data(connection, skew_seconds="90000"), **HTMX)
    assert b"A clock-skew allowance above a day hides real lag." in html.content
    assert not FreshnessSettings.objects.exists()
    owner_client.post(url, settings_data(connection), **HTMX)
    saved = FreshnessSettings.objects.get()
    assert (saved.source_time_field, saved.skew_seconds) == ("updated_at", 30)
    assert saved.history.count() == 1
    html = owner_client.post(url, settings_data(connection), **HTMX).content.decode()
    assert f"{connection} already has one; edit it instead of adding another." in html
    page = owner_client.get(reverse("planner:step", args=[project.pk, 2])).content.decode()
    assert 'id="freshness"' in page and "synced_at" in page
    trail = reverse("planner:history_object", args=[project.pk, "freshness", saved.pk])
    assert "synced_at" in owner_client.get(trail).content.decode()


def test_a_viewer_can_neither_configure_nor_measure(project, member):
    from tests.conftest import client_for

    viewer = client_for(member(Role.VIEWER))
    connection = ConnectionFactory(project=project)
    url = reverse("planner:freshness_add", args=[project.pk])
    assert viewer.post(url, settings_data(connection)).status_code == 403
    assert not FreshnessSettings.objects.exists()
    c = CriterionFactory(project=project, metric_key=MetricKey.FRESHNESS)
    measure = reverse("planner:criterion_measure", args=[project.pk, c.pk])
    assert viewer.post(measure).status_code == 403
    page = viewer.get(reverse("planner:criterion_freshness", args=[project.pk, c.pk]))
    assert page.status_code == 200
    assert b"Measure now" not in page.content


@pytest.fixture
def measurable(project):
    settings = FreshnessSettingsFactory(connection=ConnectionFactory(project=project))
    return CriterionFactory(
        project=project,
        metric_key=MetricKey.FRESHNESS,
        freshness_connection=settings.connection,
        target=5,
        unit="minutes",
    )


def test_measure_now_queues_a_measurement_for_an_editor(project, member, measurable, monkeypatch):
    from tests.conftest import client_for

    sent = []
    monkeypatch.setattr(freshness, "publish", lambda task, *args: sent.append((task.name, args)))
    editor = client_for(member(Role.EDITOR))
    url = reverse("planner:criterion_measure", args=[project.pk, measurable.pk])
    assert editor.get(url).status_code == 405
    response = editor.post(url, follow=True)
    assert sent == [("planner.freshness_tasks.measure", (measurable.pk,))]
    assert b"Measurement queued" in response.content


def test_with_the_broker_down_measure_now_says_so_and_records_nothing(
    project, owner_client, measurable, monkeypatch
):
    def down(task, *args):
        raise QueueUnreachable("refused")

    monkeypatch.setattr(freshness, "publish", down)
    url = reverse("planner:criterion_measure", args=[project.pk, measurable.pk])
    page = owner_client.post(url, follow=True).content.decode()
    assert "The task queue is unreachable: no worker can measure now." in page
    assert 'data-testid="freshness-error"' in page
    assert not SliPoint.objects.exists()


def test_the_page_shows_the_latest_point_its_late_records_and_the_last_error(
    project, owner_client, measurable
):
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    SliPoint.objects.create(
        criterion=measurable, at=at, good=5, total=10, lag_p50=10, lag_p95=400, late_now=4
    )
    FreshnessState.objects.create(
        criterion=measurable,
        measured_at=at,
        pending=1,
        unmeasured=2,
        figures={"share_within_pct": 50.0},
        late_examples=[
            {
                "key": {"id": 7},
                "source_changed": "2026-06-01T11:50:00+00:00",
                "target_changed": None,
                "late_by_seconds": 600.0,
            }
        ],
        last_error="Target (Marketing): connection refused",
        error_at=at,
    )
    url = reverse("planner:criterion_freshness", args=[project.pk, measurable.pk])
    page = owner_client.get(url).content.decode()
    assert "5 of 10 records (50.000 %)" in page
    assert "id=7" in page and "not there" in page and "600.0 s" in page
    assert "Target (Marketing): connection refused" in page
    assert "Measure now" in page
    # One canary section, in the page's body; the title is plain text.
    assert page.count('data-testid="canary"') == 1
    title = page.split("<title>", 1)[1].split("</title>", 1)[0]
    assert "<" not in title and measurable.metric in title
    step1 = owner_client.get(reverse("planner:step", args=[project.pk, 1])).content.decode()
    assert "last measurement failed" in step1


def test_the_task_measures_and_a_deleted_criterion_drops_its_entry(db, measurable, monkeypatch):
    from planner.runs import tasks
    from planner.runs.freshness_schedule import sync_measurement

    calls = []
    monkeypatch.setattr(freshness, "measure_and_record", lambda c, **kw: calls.append(c.pk) or None)
    tasks.measure_freshness(measurable.pk)
    assert calls == [measurable.pk]
    sync_measurement(measurable)
    pk = measurable.pk
    measurable.delete()
    tasks.measure_freshness(pk)
    assert entry(pk) is None


def test_step_1_lists_freshness_criteria_in_a_constant_number_of_queries(
    project, owner_client, django_assert_max_num_queries
):
    settings = FreshnessSettingsFactory(connection=ConnectionFactory(project=project))
    url = reverse("planner:step", args=[project.pk, 1])

    def add(n):
        for _ in range(n):
            CriterionFactory(
                project=project,
                metric_key=MetricKey.FRESHNESS,
                freshness_connection=settings.connection,
            )

    add(1)
    owner_client.get(url)
    with django_assert_max_num_queries(60) as one:
        page = owner_client.get(url).content.decode()
    assert 'data-testid="freshness-criteria"' in page and "measured every 1 min" in page
    add(20)
    with django_assert_max_num_queries(len(one.captured_queries)):
        owner_client.get(url)
