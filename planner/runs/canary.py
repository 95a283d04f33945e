"""The active canary probe of a propagation-lag criterion.

Create a test record tagged ``aethon-canary-<uuid>`` in the source (POST, with the probe's own
write credential), poll the target's lookup URL until it answers 200 with the tag in the body,
and take the seconds from the create to that answer as one end-to-end measurement; the test
record is always deleted afterwards, whatever happened. Every request goes through the
connectors' outbound guard (SSRF checks, pinned addresses, timeouts).

The write credential is only sent to the source origin it was sealed with (create and delete);
the target lookup never carries it. A probe that cannot measure (refused, failed, timed out)
records no point: the reason is kept on the probe and shown on the criterion's page.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from django.utils import timezone

from planner.connectors.guard import http_request
from planner.connectors.names import ConnectorError
from planner.metrics.points import record_point
from planner.models import CanaryProbe, MetricKey, SuccessCriterion
from planner.models.base import Comparator
from planner.runs import secrets, slo_alerts
from planner.runs.endpoints import guard_policy
from planner.task_queue import QueueUnreachable, publish

TAG_PREFIX = "aethon-canary-"
PLACEHOLDER = "{tag}"
CREDENTIAL = "write"
PROBE_TASK = "planner.freshness_tasks.canary"


class ProbeFailed(Exception):
    """Why a probe could not measure; ``message`` is shown on the criterion's page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def origin(url: str) -> str:
    """'https://crm.example:8443' — where a write credential may be sent."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def seal_credential(value: str, create_url: str, header: str) -> str:
    binding = {"kind": "canary", "origin": origin(create_url), "header": header.strip().lower()}
    return secrets.seal({CREDENTIAL: value}, {CREDENTIAL: binding})


def credential_binding(probe: CanaryProbe) -> dict | None:
    if not probe.credential_token:
        return None
    return (secrets.unseal(probe.credential_token).bindings or {}).get(CREDENTIAL)


def write_headers(probe: CanaryProbe) -> dict[str, str]:
    """The write credential header, only if it was entered for the current source origin."""
    if not probe.credential_token:
        return {}
    sealed = secrets.unseal(probe.credential_token)
    entered = (sealed.bindings or {}).get(CREDENTIAL)
    current = {
        "kind": "canary",
        "origin": origin(probe.create_url),
        "header": probe.credential_header.strip().lower(),
    }
    if entered != current:
        raise ProbeFailed(
            "The write credential was entered for another source address or header; it was not"
            " sent. Enter it again in the probe settings."
        )
    return {probe.credential_header.strip(): sealed.values[CREDENTIAL]}


def problem(criterion: SuccessCriterion, probe: CanaryProbe | None) -> str:
    """Why the probe cannot run for this criterion ('' when it can)."""
    from planner.metrics import freshness as lag  # polars: loaded when a probe is judged

    if criterion.metric_key != MetricKey.FRESHNESS:
        return "the criterion is not measured by propagation lag"
    if criterion.freshness_connection_id is None:
        return "the criterion names no connection"
    if lag.target_seconds(criterion.target or 0, criterion.unit) is None or not criterion.target:
        return "the criterion has no duration target"
    if probe is None:
        return "no canary probe is configured for this connection"
    if not probe.enabled:
        return "the canary probe is off"
    return ""


def probe_of(criterion: SuccessCriterion) -> CanaryProbe | None:
    return CanaryProbe.objects.filter(connection_id=criterion.freshness_connection_id).first()


def _fill(template: str, tag: str) -> str:
    return template.replace(PLACEHOLDER, tag)


def _check(response, what: str) -> None:
    if not 200 <= response.status < 300:
        raise ProbeFailed(f"The {what} answered HTTP {response.status}.")


def probe_once(
    probe: CanaryProbe,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[float, str]:
    """Create, poll, delete: the end-to-end seconds and the tag, or ProbeFailed.

    The clean-up error (if any) is kept on the probe; it does not undo a measurement.
    """
    policy = guard_policy()
    headers = write_headers(probe)
    tag = TAG_PREFIX + uuid.uuid4().hex
    cleanup_error = ""
    try:
        started = clock()
        try:
            created = http_request(
                "POST",
                probe.create_url,
                policy,
                {**headers, "Content-Type": "application/json", "Accept": "application/json"},
                _fill(probe.create_body, tag).encode(),
            )
            _check(created, "source create URL")
            deadline = started + probe.timeout_seconds
            while True:
                found = http_request(
                    "GET", _fill(probe.lookup_url, tag), policy, {"Accept": "application/json"}
                )
                if found.status == 200 and tag.encode() in found.body:
                    return round(clock() - started, 3), tag
                if clock() + probe.poll_seconds > deadline:
                    raise ProbeFailed(
                        f"The test record did not show in the target within"
                        f" {probe.timeout_seconds} s."
                    )
                sleep(probe.poll_seconds)
        except ConnectorError as exc:
            raise ProbeFailed(str(exc)) from None
    finally:
        # Always try to remove the test record, also when creating it seemed to fail: the
        # source may have stored it before answering badly.
        try:
            deleted = http_request("DELETE", _fill(probe.delete_url, tag), policy, headers)
            if not 200 <= deleted.status < 300 and deleted.status != 404:
                cleanup_error = f"Deleting test record {tag} answered HTTP {deleted.status}."
        except ConnectorError as exc:
            cleanup_error = f"Deleting test record {tag} failed: {exc}"
        CanaryProbe.objects.filter(pk=probe.pk).update(cleanup_error=cleanup_error)


def probe_and_record(criterion: SuccessCriterion, *, now: datetime | None = None, **timing):
    """One probe stored as one point (good when its time meets the target by the criterion's
    comparator), or the reason on the probe (and None). Nothing runs unless the probe is
    enabled."""
    probe = probe_of(criterion)
    reason = problem(criterion, probe)
    if reason:
        if probe is not None and probe.enabled:
            _failed(probe, reason, now)
        return None
    try:
        seconds, _tag = probe_once(probe, **timing)
    except ProbeFailed as exc:
        _failed(probe, exc.message, now)
        return None
    from planner.metrics import freshness as lag

    now = now or timezone.now()
    target = lag.target_seconds(criterion.target, criterion.unit)
    point = record_point(
        criterion,
        at=now,
        # Judged as a passive measurement judges a lag: by the criterion's own comparator.
        good=1 if Comparator(criterion.comparator).holds(seconds, target) else 0,
        total=1,
        lag_p50=seconds,
        lag_p95=seconds,
        lag_p99=seconds,
        lag_max=seconds,
    )
    CanaryProbe.objects.filter(pk=probe.pk).update(
        last_probe_at=now, last_seconds=seconds, last_error="", error_at=None
    )
    slo_alerts.evaluate_after(criterion, now)
    return point


def _failed(probe: CanaryProbe, message: str, now: datetime | None) -> None:
    CanaryProbe.objects.filter(pk=probe.pk).update(
        last_error=message, error_at=now or timezone.now()
    )


def request_probe(criterion: SuccessCriterion) -> str:
    """'Probe now': queue one probe for a worker; returns what the person is told."""
    from aethon.celery import app

    probe = probe_of(criterion)
    reason = problem(criterion, probe)
    if reason:
        raise ProbeFailed(f"The probe cannot run: {reason}.")
    try:
        publish(app.tasks[PROBE_TASK], criterion.pk)
    except QueueUnreachable:
        message = "The task queue is unreachable: no worker can probe now."
        _failed(probe, message, None)
        raise ProbeFailed(message) from None
    return "Probe queued: the measurement appears when a worker has seen the record arrive."
