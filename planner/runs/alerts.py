"""Alerts: step-6 monitor thresholds checked against validation-run figures.

One alert per breach: a monitor breached on a connection opens an alert (fingerprint
`monitor:<id>:connection:<id>`) and notifies once; while it stays breached the alert is only
updated; when a later measurement is back within the threshold the alert is resolved and a
recovery message goes out. A monitor the run cannot measure changes nothing.

Notifications go by email (owners and editors, plus email channels) and to webhook channels
(generic JSON or Slack-compatible), always through the SSRF guard.
"""

import dataclasses
import json
import logging
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from planner.connectors import BlockedDestination, ConnectorError
from planner.connectors.guard import http_post_json, resolve_and_check
from planner.metrics import figures as kpis
from planner.models import Alert, AlertChannel, Membership, Monitor, Role, ValidationRun
from planner.runs.endpoints import guard_policy

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT = 10.0


def _policy():
    p = guard_policy()
    return dataclasses.replace(
        p,
        connect_timeout=min(p.connect_timeout, WEBHOOK_TIMEOUT),
        read_timeout=min(p.read_timeout, WEBHOOK_TIMEOUT),
        total_timeout=min(p.total_timeout, WEBHOOK_TIMEOUT),
        max_response_bytes=64 * 1024,
    )


def check_webhook_url(url: str) -> None:
    """Refuse a webhook URL the guard would refuse (private, loopback, link-local...)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Enter an http:// or https:// URL with a host.")
    if parts.username or parts.password:
        raise ValidationError("Credentials do not belong in the URL.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        resolve_and_check(parts.hostname, port, _policy())
    except BlockedDestination as exc:
        raise ValidationError(str(exc)) from None
    except (ConnectorError, ValueError) as exc:
        raise ValidationError(f"This URL cannot be reached: {exc}") from None


def fingerprint(monitor: Monitor, connection_id: int) -> str:
    return f"monitor:{monitor.pk}:connection:{connection_id}"


def _measure(monitor: Monitor, figures: dict) -> float | None:
    if monitor.threshold is None:
        return None
    if monitor.kind == Monitor.Kind.CONNECTIVITY:
        # "alert when < 99 %" watches availability; "alert when > 0" watches failures.
        if monitor.comparator in ("<", "<="):
            m = kpis.Match("availability_pct")
        elif kpis.normalise_unit(monitor.unit) in ("%", "percent", "pct"):
            m = kpis.Match("unreachable_pct")
        else:
            m = kpis.Match("connectivity_failures")
    elif monitor.kind in (Monitor.Kind.ERROR_RATE, Monitor.Kind.DATA_QUALITY):
        m = kpis.Match("error_rate_pct")
    elif monitor.kind == Monitor.Kind.RECONCILIATION:
        m = kpis.Match("mismatch_rate_pct")
    elif monitor.kind == Monitor.Kind.THROUGHPUT:
        m = kpis.Match("records_synced")
    elif monitor.kind == Monitor.Kind.CRITERION and monitor.criterion_id:
        c = monitor.criterion
        m = kpis.match_metric(c.metric, c.unit)
    else:
        m = kpis.match_metric(monitor.name, monitor.unit)
    return kpis.value_for(m, figures)


def _text(monitor: Monitor, connection, value: float) -> str:
    threshold = f"{monitor.threshold.normalize():f}"
    return (
        f"{monitor.name} on {connection}: {value:g} {monitor.unit} "
        f"(alert when {monitor.comparator} {threshold} {monitor.unit})"
    ).replace("  ", " ")


def evaluate_run(run: ValidationRun, source: str = "") -> dict[str, list[Alert]]:
    """Open, keep or resolve the alerts of every monitor measurable from `run`."""
    figures = kpis.derive(kpis.raw_of_run(run))
    opened, resolved = [], []
    monitors = Monitor.objects.filter(project_id=run.project_id).select_related("criterion")
    connection = run.connection
    now = timezone.now()
    for monitor in monitors:
        value = _measure(monitor, figures)
        if value is None:
            continue
        fp = fingerprint(monitor, run.connection_id)
        breached = kpis.holds(value, monitor.comparator, float(monitor.threshold))
        current = Alert.objects.filter(fingerprint=fp, state=Alert.State.OPEN).first()
        if breached and current is not None:
            Alert.objects.filter(pk=current.pk).update(last_value=value, last_seen_at=now)
        elif breached:
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        project_id=run.project_id,
                        monitor=monitor,
                        connection=connection,
                        fingerprint=fp,
                        severity=monitor.severity,
                        title=_text(monitor, connection, value),
                        value=value,
                        last_value=value,
                        source=source or f"validation run #{run.pk}",
                    )
            except IntegrityError:
                continue  # opened concurrently by another evaluation: one alert per breach
            opened.append(alert)
        elif current is not None:
            done = Alert.objects.filter(pk=current.pk, state=Alert.State.OPEN).update(
                state=Alert.State.RESOLVED, resolved_at=now, last_value=value, last_seen_at=now
            )
            if done:
                current.refresh_from_db()
                resolved.append(current)
    for alert in opened:
        notify(alert, recovered=False)
    for alert in resolved:
        notify(alert, recovered=True)
    return {"opened": opened, "resolved": resolved}


# ---------------------------------------------------------------------------------------------
# Delivery


def _message(alert: Alert, recovered: bool) -> tuple[str, str, str]:
    from django.conf import settings

    url = settings.AETHON_BASE_URL + reverse("planner:alerts", args=[alert.project_id])
    if recovered:
        subject = f"[Aethon] Recovered: {alert.project.name}: {alert.title}"
        when = f"{alert.resolved_at:%Y-%m-%d %H:%M}"
        body = f"Back within the threshold ({alert.last_value:g}) at {when}."
    else:
        subject = f"[Aethon] {alert.get_severity_display()}: {alert.project.name}: {alert.title}"
        body = f"Breached, measured by {alert.source}, at {alert.opened_at:%Y-%m-%d %H:%M}."
    return subject, body, url


def _emails(alert: Alert, channels: list[AlertChannel]) -> list[str]:
    members = Membership.objects.filter(
        project_id=alert.project_id, role__in=[Role.OWNER, Role.EDITOR]
    ).select_related("user")
    out = {m.user.email for m in members if m.user.email}
    out |= {c.target for c in channels if c.kind == AlertChannel.Kind.EMAIL}
    return sorted(out)


def payload(alert: Alert, recovered: bool, kind: str) -> bytes:
    subject, body, url = _message(alert, recovered)
    if kind == AlertChannel.Kind.SLACK:
        icon = ":white_check_mark:" if recovered else ":rotating_light:"
        return json.dumps({"text": f"{icon} {subject}\n{body}\n<{url}|Open the alerts>"}).encode()
    return json.dumps(
        {
            "event": "alert.resolved" if recovered else "alert.opened",
            "project": {"id": alert.project_id, "name": alert.project.name},
            "alert": {
                "id": alert.pk,
                "fingerprint": alert.fingerprint,
                "severity": alert.severity,
                "title": alert.title,
                "value": alert.last_value,
                "state": alert.state,
                "opened_at": alert.opened_at.isoformat(),
                "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            },
            "url": url,
        }
    ).encode()


def send_webhook(url: str, body: bytes) -> str:
    """POST through the guard; returns 'ok' or the reason it failed (never raises)."""
    try:
        response = http_post_json(url, body, _policy())
    except ConnectorError as exc:  # BlockedDestination included
        return f"refused: {exc}" if isinstance(exc, BlockedDestination) else f"failed: {exc}"
    if 200 <= response.status < 300:
        return "ok"
    return f"failed: HTTP {response.status}"


def notify(alert: Alert, recovered: bool) -> list[dict]:
    channels = list(AlertChannel.objects.filter(project_id=alert.project_id))
    subject, body, url = _message(alert, recovered)
    log_rows = []
    recipients = _emails(alert, channels)
    if recipients:
        try:
            send_mail(subject, f"{body}\n\n{url}\n", None, recipients)
            result = "ok"
        except Exception as exc:  # a mail outage must not lose the alert
            log.exception("alert %s: email failed", alert.pk)
            result = f"failed: {exc}"
        log_rows.append({"channel": "email", "to": ", ".join(recipients), "result": result})
    for c in channels:
        if c.kind == AlertChannel.Kind.EMAIL:
            continue
        result = send_webhook(c.target, payload(alert, recovered, c.kind))
        log_rows.append({"channel": c.kind, "to": c.target, "result": result})
    event = "recovered" if recovered else "opened"
    stamp = timezone.now().isoformat()
    alert.deliveries = [*alert.deliveries, *({**r, "event": event, "at": stamp} for r in log_rows)]
    Alert.objects.filter(pk=alert.pk).update(deliveries=alert.deliveries)
    return log_rows
