"""The active canary probe against loopback servers simulating a source and a slow target."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from django.urls import reverse

from planner.models import CanaryProbe, MetricKey, Role, SliPoint, SuccessCriterion
from planner.runs import canary, secrets
from planner.runs.tasks import measure_freshness
from tests.conftest import client_for
from tests.connectors import Reply, Request, loopback_only, serve  # noqa: F401 - fixture
from tests.factories import ConnectionFactory, CriterionFactory, MembershipFactory, UserFactory

SECRET = "write-token-s3cr3t-value"


class Systems:
    """A source that stores records and a target that shows each one `delay` seconds later."""

    def __init__(self, delay: float, create_status: int = 201, absent_status: int = 404) -> None:
        self.delay, self.create_status, self.absent_status = delay, create_status, absent_status
        self.created: dict[str, float] = {}
        self.deleted: list[str] = []
        self.lock = threading.Lock()

    def source(self, req: Request) -> Reply:
        if req.method == "POST" and req.path == "/records":
            tag = json.loads(req.body)["email"].split("@")[0]
            with self.lock:
                self.created[tag] = time.monotonic()
            return Reply(self.create_status, body={"id": tag})
        if req.method == "DELETE" and req.path.startswith("/records/"):
            tag = req.path.rsplit("/", 1)[1]
            with self.lock:
                self.deleted.append(tag)
                self.created.pop(tag, None)
            return Reply(204)
        return Reply(405)

    def target(self, req: Request) -> Reply:
        tag = req.query.get("email", "").split("@")[0]
        with self.lock:
            at = self.created.get(tag)
        if at is not None and time.monotonic() - at >= self.delay:
            return Reply(body={"items": [{"email": f"{tag}@example.invalid"}]})
        return Reply(self.absent_status, body={"items": []})


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    # The same allow-list the connector tests use to reach their loopback servers.
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]


def _criterion(project=None, target=5, unit="minutes") -> SuccessCriterion:
    connection = ConnectionFactory(**({"project": project} if project else {}))
    made = CriterionFactory(
        project=connection.project,
        metric="new contacts in the marketing tool",
        metric_key=MetricKey.FRESHNESS,
        target=target,
        unit=unit,
        freshness_connection=connection,
        window_value=None,
    )
    return SuccessCriterion.objects.get(pk=made.pk)


def _probe(criterion, source_url: str, target_url: str, **kwargs) -> CanaryProbe:
    create_url = f"{source_url}/records"
    values = {
        "enabled": True,
        "create_url": create_url,
        "create_body": '{"email": "{tag}@example.invalid", "name": "Aethon canary"}',
        "delete_url": f"{source_url}/records/{{tag}}",
        "lookup_url": f"{target_url}/contacts?email={{tag}}@example.invalid",
        "credential_header": "Authorization",
        "credential_token": canary.seal_credential(f"Bearer {SECRET}", create_url, "Authorization"),
        "poll_seconds": 1,
        "timeout_seconds": 10,
        **kwargs,
    }
    return CanaryProbe.objects.create(
        project=criterion.project, connection=criterion.freshness_connection, **values
    )


@pytest.fixture
def systems():
    def start(delay: float = 1.2, create_status: int = 201, absent_status: int = 404):
        sim = Systems(delay, create_status, absent_status)
        src, tgt = serve(sim.source), serve(sim.target)
        sim.src, sim.tgt = src.__enter__(), tgt.__enter__()
        started.append((src, tgt))
        return sim

    started: list = []
    yield start
    for src, tgt in started:
        src.__exit__(None, None, None)
        tgt.__exit__(None, None, None)


def _points(criterion) -> list[SliPoint]:
    return list(SliPoint.objects.filter(criterion=criterion))


@pytest.mark.django_db
def test_probe_measures_end_to_end_time_and_cleans_up(systems):
    sim = systems(delay=1.2)
    criterion = _criterion()
    probe = _probe(criterion, sim.src.url, sim.tgt.url)

    point = canary.probe_and_record(criterion)

    assert point is not None and (point.good, point.total) == (1, 1)
    # Polled every second: absent at ~0 s and ~1 s, there at ~2 s (it shows after 1.2 s).
    assert 1.2 <= point.lag_max < 3.5
    assert point.lag_p50 == point.lag_p95 == point.lag_p99 == point.lag_max
    probe.refresh_from_db()
    assert probe.last_seconds == point.lag_max and probe.last_error == ""
    [create] = [r for r in sim.src.requests if r.method == "POST"]
    tag = json.loads(create.body)["email"].split("@")[0]
    assert tag.startswith("aethon-canary-") and len(tag) == len("aethon-canary-") + 32
    assert sim.deleted == [tag] and sim.created == {}
    lookups = sim.tgt.requests
    assert len(lookups) >= 2 and all(r.method == "GET" for r in lookups)
    # The write credential goes to the source only, never to the target.
    assert all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in sim.src.requests)
    assert all("authorization" not in r.headers for r in lookups)
    assert all(SECRET.encode() not in r.body for r in sim.src.requests)


@pytest.mark.django_db
def test_an_empty_200_answer_is_not_arrival(systems):
    # Search endpoints answer 200 with no items: only the tag in the body means "arrived".
    sim = systems(delay=1.2, absent_status=200)
    criterion = _criterion()
    _probe(criterion, sim.src.url, sim.tgt.url)

    point = canary.probe_and_record(criterion)

    assert point.lag_max >= 1.2 and len(sim.tgt.requests) >= 2


@pytest.mark.django_db
def test_a_probe_slower_than_the_target_is_a_bad_point(systems):
    sim = systems(delay=1.2)
    criterion = _criterion(target=1, unit="seconds")
    _probe(criterion, sim.src.url, sim.tgt.url)

    point = canary.probe_and_record(criterion)

    assert (point.good, point.total) == (0, 1) and point.lag_max > 1


@pytest.mark.django_db
def test_timeout_records_no_point_and_still_deletes(systems):
    sim = systems(delay=60)
    criterion = _criterion()
    probe = _probe(criterion, sim.src.url, sim.tgt.url, timeout_seconds=2)

    assert canary.probe_and_record(criterion) is None

    assert _points(criterion) == []
    probe.refresh_from_db()
    assert "did not show in the target within 2 s" in probe.last_error
    assert probe.error_at is not None and probe.last_seconds is None
    [delete] = [r for r in sim.src.requests if r.method == "DELETE"]
    assert delete.headers["authorization"] == f"Bearer {SECRET}"
    assert len(sim.deleted) == 1 and sim.created == {}


@pytest.mark.django_db
def test_failed_create_records_no_point_and_still_tries_to_delete(systems):
    sim = systems(create_status=500)
    criterion = _criterion()
    probe = _probe(criterion, sim.src.url, sim.tgt.url)

    assert canary.probe_and_record(criterion) is None

    probe.refresh_from_db()
    assert probe.last_error == "The source create URL answered HTTP 500."
    assert _points(criterion) == [] and sim.tgt.requests == []
    assert [r.method for r in sim.src.requests] == ["POST", "DELETE"]


@pytest.mark.django_db
def test_failed_cleanup_is_shown_but_the_measurement_stands(systems):
    sim = systems(delay=0)
    criterion = _criterion()
    probe = _probe(criterion, sim.src.url, sim.tgt.url, delete_url=f"{sim.src.url}/gone/{{tag}}")

    point = canary.probe_and_record(criterion)

    assert point is not None and point.good == 1
    probe.refresh_from_db()
    assert probe.cleanup_error.startswith("Deleting test record aethon-canary-")
    assert "HTTP 405" in probe.cleanup_error


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("where", "reason"),
    [("source", "loopback address"), ("target", "loopback address")],
)
def test_the_guard_refuses_loopback_unless_allowed(systems, settings, where, reason):
    sim = systems(delay=0)
    criterion = _criterion()
    probe = _probe(criterion, sim.src.url, sim.tgt.url)
    # Only the other side's port is allowed: this side's address is refused.
    other = sim.tgt if where == "source" else sim.src
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = [f"127.0.0.1:{other.port}"]

    assert canary.probe_and_record(criterion) is None

    probe.refresh_from_db()
    assert reason in probe.last_error and _points(criterion) == []
    refused = sim.src if where == "source" else sim.tgt
    assert refused.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest", "http://10.0.0.5/records", "http://[::1]:9/records"]
)
def test_private_and_metadata_sources_are_refused_before_any_connection(systems, url):
    sim = systems(delay=0)
    criterion = _criterion()
    probe = _probe(
        criterion,
        sim.src.url,
        sim.tgt.url,
        create_url=url,
        delete_url=url + "/{tag}",
        credential_token=canary.seal_credential(f"Bearer {SECRET}", url, "Authorization"),
    )

    assert canary.probe_and_record(criterion) is None

    probe.refresh_from_db()
    assert "refused" in probe.last_error and _points(criterion) == []
    assert sim.tgt.requests == []


@pytest.mark.django_db
def test_a_credential_entered_for_another_source_is_not_sent(systems):
    sim = systems(delay=0)
    criterion = _criterion()
    probe = _probe(
        criterion,
        sim.src.url,
        sim.tgt.url,
        credential_token=canary.seal_credential("Bearer x", "http://127.0.0.1:1/records", "X"),
    )

    assert canary.probe_and_record(criterion) is None

    probe.refresh_from_db()
    assert "entered for another source" in probe.last_error
    assert sim.src.requests == [] and sim.tgt.requests == []


@pytest.mark.django_db
def test_off_by_default_nothing_runs(systems):
    sim = systems(delay=0)
    criterion = _criterion()
    probe = CanaryProbe(project=criterion.project, connection=criterion.freshness_connection)
    assert probe.enabled is False
    _probe(criterion, sim.src.url, sim.tgt.url, enabled=False)

    assert canary.probe_and_record(criterion) is None
    # The criterion's schedule task runs an enabled probe only.
    measure_freshness(criterion.pk)

    assert sim.src.requests == [] and sim.tgt.requests == []
    assert _points(criterion) == []
    assert CanaryProbe.objects.get(connection=criterion.freshness_connection).last_error == ""


@pytest.mark.django_db
def test_the_schedule_task_runs_an_enabled_probe(systems):
    sim = systems(delay=0)
    criterion = _criterion()
    _probe(criterion, sim.src.url, sim.tgt.url)

    measure_freshness(criterion.pk)

    [point] = _points(criterion)
    assert (point.good, point.total) == (1, 1)


# ------------------------------------------------------------------ the page and permissions


def _form(source_url: str, target_url: str, **overrides: Any) -> dict[str, Any]:
    data = {
        "canary-enabled": "on",
        "canary-create_url": f"{source_url}/records",
        "canary-create_body": '{"email": "{tag}@example.invalid"}',
        "canary-delete_url": f"{source_url}/records/{{tag}}",
        "canary-lookup_url": f"{target_url}/contacts?email={{tag}}@example.invalid",
        "canary-credential_header": "Authorization",
        "canary-credential": f"Bearer {SECRET}",
        "canary-poll_seconds": "1",
        "canary-timeout_seconds": "30",
    }
    data.update({f"canary-{k}": v for k, v in overrides.items()})
    return {k: v for k, v in data.items() if v is not None}


def _urls(criterion) -> tuple[str, str, str]:
    kw = {"project_id": criterion.project_id, "pk": criterion.pk}
    return (
        reverse("planner:criterion_freshness", kwargs=kw),
        reverse("planner:criterion_canary", kwargs=kw),
        reverse("planner:criterion_canary_probe", kwargs=kw),
    )


@pytest.mark.django_db
def test_editor_configures_the_probe_and_the_secret_is_never_shown(project, editor_client):
    criterion = _criterion(project)
    page, save, _probe_url = _urls(criterion)

    response = editor_client.post(save, _form("https://crm.example", "https://mkt.example"))

    assert response.status_code == 302
    probe = CanaryProbe.objects.get(connection=criterion.freshness_connection)
    assert probe.enabled and probe.poll_seconds == 1
    assert SECRET not in probe.credential_token
    assert secrets.unseal(probe.credential_token).values == {"write": f"Bearer {SECRET}"}
    assert canary.credential_binding(probe)["origin"] == "https://crm.example:443"
    shown = editor_client.get(page).content.decode()
    assert "A write credential is stored" in shown and SECRET not in shown
    assert "Probe now" in shown
    # Saving again without retyping keeps the stored credential.
    editor_client.post(save, _form("https://crm.example", "https://mkt.example", credential=None))
    probe.refresh_from_db()
    assert secrets.unseal(probe.credential_token).values == {"write": f"Bearer {SECRET}"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"create_url": "ftp://crm.example/r"}, "Source create URL", "must start with http"),
        ({"create_body": '{"email": "x"}'}, "Create body (JSON)", "Put {tag} where"),
        ({"create_body": '{"email": "{tag}"'}, "Create body (JSON)", "not valid JSON"),
        ({"lookup_url": "https://mkt.example/c"}, "Target lookup URL", "Put {tag} where"),
        (
            {"delete_url": "https://elsewhere.example/r/{tag}"},
            "Source delete URL",
            "same server as create",
        ),
        ({"credential_header": "Bad Header"}, "Write credential header", "Give a header name"),
        ({"poll_seconds": "0"}, "Poll every (s)", "Poll every 1 to 300"),
        ({"timeout_seconds": "99999"}, "Give up after (s)", "5 to 3600"),
        ({"credential": None}, "Write credential (header value)", "Enter the write credential"),
    ],
)
def test_bad_settings_are_named_per_field_and_nothing_is_saved(
    project, editor_client, overrides, field, message
):
    criterion = _criterion(project)
    _page, save, _ = _urls(criterion)

    response = editor_client.post(
        save, _form("https://crm.example", "https://m.example", **overrides)
    )

    assert response.status_code == 400
    text = response.content.decode()
    assert f"{field}: " in text and message in text
    assert SECRET not in text
    assert not CanaryProbe.objects.exists()


@pytest.mark.django_db
def test_a_new_source_server_needs_the_credential_again(project, editor_client):
    criterion = _criterion(project)
    _page, save, _ = _urls(criterion)
    editor_client.post(save, _form("https://crm.example", "https://m.example"))

    moved = editor_client.post(
        save, _form("https://evil.example", "https://m.example", credential=None)
    )

    assert moved.status_code == 400
    assert "entered for another source server" in moved.content.decode()
    probe = CanaryProbe.objects.get()
    assert probe.create_url == "https://crm.example/records"


@pytest.mark.django_db
def test_viewer_gets_403_and_outsider_404(project, member):
    criterion = _criterion(project)
    page, save, probe_now = _urls(criterion)
    viewer = client_for(member(Role.VIEWER))
    outsider = client_for(UserFactory())
    data = _form("https://crm.example", "https://m.example")

    assert viewer.post(save, data).status_code == 403
    assert viewer.post(probe_now).status_code == 403
    assert "canary-form" not in viewer.get(page).content.decode()
    assert outsider.post(save, data).status_code == 404
    assert outsider.post(probe_now).status_code == 404
    assert outsider.get(page).status_code == 404
    assert not CanaryProbe.objects.exists()


@pytest.mark.django_db
def test_probe_now_runs_the_task_and_shows_the_result(
    project, editor_client, systems, celery_eager
):
    sim = systems(delay=0)
    criterion = _criterion(project)
    page, _save, probe_now = _urls(criterion)
    _probe(criterion, sim.src.url, sim.tgt.url)

    response = editor_client.post(probe_now, follow=True)

    assert response.status_code == 200
    assert "Probe queued" in response.content.decode()
    [point] = _points(criterion)
    assert point.good == 1
    assert "s end to end" in editor_client.get(page).content.decode()


@pytest.mark.django_db
def test_probe_now_refuses_a_disabled_probe(project, editor_client, systems):
    sim = systems(delay=0)
    criterion = _criterion(project)
    _page, _save, probe_now = _urls(criterion)
    _probe(criterion, sim.src.url, sim.tgt.url, enabled=False)

    response = editor_client.post(probe_now, follow=True)

    assert "The probe cannot run: the canary probe is off." in response.content.decode()
    assert sim.src.requests == [] and _points(criterion) == []


@pytest.mark.django_db
def test_a_failed_probe_reason_is_on_the_page(project, systems):
    sim = systems(create_status=503)
    criterion = _criterion(project)
    page, _save, _ = _urls(criterion)
    _probe(criterion, sim.src.url, sim.tgt.url)
    canary.probe_and_record(criterion)
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user

    shown = client_for(viewer).get(page).content.decode()

    assert "The source create URL answered HTTP 503." in shown and SECRET not in shown


@pytest.mark.django_db
def test_key_rotation_re_encrypts_the_write_credential(settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.AETHON_SECRET_KEYS = [old]
    criterion = _criterion()
    probe = _probe(criterion, "https://crm.example", "https://m.example")
    settings.AETHON_SECRET_KEYS = [new, old]

    call_command("rotate_secret_keys", stdout=None)

    settings.AETHON_SECRET_KEYS = [new]  # the old key is gone: the credential still reads
    probe.refresh_from_db()
    assert canary.write_headers(probe) == {"Authorization": f"Bearer {SECRET}"}


@pytest.mark.django_db
@pytest.mark.parametrize(("comparator", "good"), [("<=", 1), ("<", 0), ("=", 1), (">", 0)])
def test_a_probe_is_judged_by_the_criterions_own_comparator(systems, comparator, good):
    sim = systems(delay=0)
    criterion = _criterion(target=2, unit="seconds")
    SuccessCriterion.objects.filter(pk=criterion.pk).update(comparator=comparator)
    criterion.refresh_from_db()
    _probe(criterion, sim.src.url, sim.tgt.url)
    ticks = iter([0.0])  # the create starts at 0 s; the record is seen at exactly 2 s

    point = canary.probe_and_record(
        criterion, clock=lambda: next(ticks, 2.0), sleep=lambda _s: None
    )

    assert (point.lag_max, point.good, point.total) == (2.0, good, 1)
