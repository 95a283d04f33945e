"""Alerts: step-6 monitor thresholds checked against validation-run figures.

One alert per breach: a monitor breached on a connection opens an alert (fingerprint
`monitor:<id>:connection:<id>`) and notifies once; while it stays breached the alert is only
updated; when a later measurement is back within the threshold the alert is resolved and a
recovery message goes out. A monitor the run cannot measure changes nothing. Each monitor
watches one figure of planner/metrics (its `metric_key`, or its criterion's) and the alert
carries that figure's unit.

Routing: a monitor's alert route names channels (comma-separated channel names); a channel
takes the severities it lists. Nothing routed falls back to unnamed channels, then to the
project's owners and editors by email, so an alert is never silent. An open alert nobody
acknowledged is repeated every `remind_every_minutes` and, after `escalate_after_minutes`, sent
to the `escalate_to` route (`remind_and_escalate`, a beat entry every minute). Webhooks (generic
JSON or Slack-compatible) always go through the SSRF guard.
"""

import dataclasses
import json
import logging
import math
from datetime import timedelta
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from planner.connectors import BlockedDestination, ConnectorError
from planner.connectors.guard import http_post_json, resolve_and_check
from planner.metrics import figures as kpis
from planner.models import (
    Alert,
    AlertChannel,
    Comparator,
    Membership,
    Monitor,
    NotificationKind,
    Role,
    ValidationRun,
)
from planner.notify.service import notify as notify_people
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
    return figures.get(kpis.monitor_metric(monitor))


def _text(monitor: Monitor, connection, value: float, unit: str) -> str:
    threshold = f"{monitor.threshold.normalize():f}"
    label = Comparator(monitor.comparator).label
    return (
        f"{monitor.name} on {connection}: {value:g} {unit} (alert when {label} {threshold} {unit})"
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
        unit = kpis.unit_of(kpis.monitor_metric(monitor))
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
                        title=_text(monitor, connection, value, unit),
                        value=value,
                        unit=unit,
                        last_value=value,
                        source=source or f"validation run #{run.number}",
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
        tell_members(alert)
    for alert in resolved:
        notify(alert, recovered=True)
    return {"opened": opened, "resolved": resolved}


def acknowledge(alert: Alert, user) -> bool:
    """Record who took the alert; reminders and escalation stop. False if already taken/closed."""
    return bool(
        Alert.objects.filter(
            pk=alert.pk, state=Alert.State.OPEN, acknowledged_at__isnull=True
        ).update(acknowledged_at=timezone.now(), acknowledged_by=user)
    )


def remind_and_escalate(now=None) -> dict[str, list[int]]:
    """Repeat open, unacknowledged alerts on their monitor's schedule; escalate the overdue.

    Each reminder and escalation is claimed by a conditional update first, so two beat
    deliveries never send it twice.
    """
    now = now or timezone.now()
    reminded, escalated = [], []
    pending = Alert.objects.filter(
        state=Alert.State.OPEN, acknowledged_at__isnull=True, monitor__isnull=False
    ).select_related("monitor", "project")
    for alert in pending:
        m = alert.monitor
        if (
            m.escalate_after_minutes
            and m.escalate_to.strip()
            and alert.escalated_at is None
            and alert.opened_at + timedelta(minutes=m.escalate_after_minutes) <= now
        ):
            claimed = Alert.objects.filter(pk=alert.pk, escalated_at__isnull=True).update(
                escalated_at=now
            )
            if claimed:
                alert.escalated_at = now
                notify(alert, recovered=False, event="escalated", route=m.escalate_to)
                escalated.append(alert.pk)
                continue
        if not m.remind_every_minutes:
            continue
        last = alert.reminded_at or alert.opened_at
        if last + timedelta(minutes=m.remind_every_minutes) > now:
            continue
        claimed = Alert.objects.filter(pk=alert.pk, reminders=alert.reminders).update(
            reminded_at=now, reminders=alert.reminders + 1
        )
        if claimed:
            alert.reminded_at, alert.reminders = now, alert.reminders + 1
            notify(alert, recovered=False, event="reminder")
            reminded.append(alert.pk)
    return {"reminded": reminded, "escalated": escalated}


# ---------------------------------------------------------------------------------------------
# Delivery


def _unbounded(value: float | None) -> bool:
    return value is not None and math.isinf(value)


def _figure(value: float | None) -> str:
    """An alert's figure in a message: a burn against a 100 % objective is unbounded."""
    return "∞" if _unbounded(value) else f"{value:g}"


def _message(alert: Alert, recovered: bool, event: str = "") -> tuple[str, str, str]:
    from django.conf import settings

    url = settings.AETHON_BASE_URL + reverse("planner:alerts", args=[alert.project_id])
    if recovered:
        subject = f"[Aethon] Recovered: {alert.project.name}: {alert.title}"
        when = f"{alert.resolved_at:%Y-%m-%d %H:%M}"
        value = f"{_figure(alert.last_value)} {alert.unit}".strip()
        body = f"Back within the threshold ({value}) at {when}."
    elif event in ("reminder", "escalated"):
        word = "Escalated" if event == "escalated" else f"Reminder {alert.reminders}"
        subject = f"[Aethon] {word}: {alert.project.name}: {alert.title}"
        body = (
            f"Open since {alert.opened_at:%Y-%m-%d %H:%M} and not acknowledged; "
            f"last measured {_figure(alert.last_value)} {alert.unit}.".replace(" .", ".")
        )
    else:
        subject = f"[Aethon] {alert.get_severity_display()}: {alert.project.name}: {alert.title}"
        body = f"Breached, measured by {alert.source}, at {alert.opened_at:%Y-%m-%d %H:%M}."
    return subject, body, url


def route_names(route: str) -> list[str]:
    return [n.strip().lower() for n in route.split(",") if n.strip()]


def routed_channels(alert: Alert, route: str) -> list[AlertChannel]:
    """The channels an alert of this severity goes to on `route` (channel names)."""
    channels = [
        c
        for c in AlertChannel.objects.filter(project_id=alert.project_id)
        if c.takes(alert.severity)
    ]
    names = route_names(route)
    named = [c for c in channels if c.name and c.name.strip().lower() in names]
    return named or [c for c in channels if not c.name.strip()]


def tell_members(alert: Alert) -> list:
    """An opened alert in the owners' and editors' notifications (the bell), never mailed
    again: the alert's route decides who is mailed or paged (its channels, or the members
    themselves when it has none), and a notification mail would bypass that route."""
    members = Membership.objects.filter(
        project_id=alert.project_id, role__in=[Role.OWNER, Role.EDITOR]
    ).values_list("user_id", flat=True)
    made = notify_people(
        list(members),
        alert.project,
        NotificationKind.ALERT,
        f"Alert ({alert.get_severity_display()}): {alert.title}",
        reverse("planner:alerts", args=[alert.project_id]),
        mailed=True,
    )
    return made


def _member_emails(alert: Alert) -> list[str]:
    members = Membership.objects.filter(
        project_id=alert.project_id, role__in=[Role.OWNER, Role.EDITOR]
    ).select_related("user")
    return sorted({m.user.email for m in members if m.user.email})


def payload(alert: Alert, recovered: bool, kind: str, event: str = "") -> bytes:
    subject, body, url = _message(alert, recovered, event)
    if kind == AlertChannel.Kind.SLACK:
        icon = ":white_check_mark:" if recovered else ":rotating_light:"
        return json.dumps({"text": f"{icon} {subject}\n{body}\n<{url}|Open the alerts>"}).encode()
    return json.dumps(
        {
            "event": f"alert.{event or ('resolved' if recovered else 'opened')}",
            "project": {"id": alert.project_id, "name": alert.project.name},
            "alert": {
                "id": alert.pk,
                "fingerprint": alert.fingerprint,
                "severity": alert.severity,
                "title": alert.title,
                # JSON has no Infinity: a burn against a 100 % objective is sent as null.
                "value": None if _unbounded(alert.last_value) else alert.last_value,
                "unit": alert.unit,
                "acknowledged": alert.acknowledged_at is not None,
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


def notify(alert: Alert, recovered: bool, event: str = "", route: str | None = None) -> list[dict]:
    """Send the alert to its route (the monitor's, or `route` for an escalation)."""
    if route is None:
        route = alert.monitor.alert_route if alert.monitor_id and alert.monitor else ""
    channels = routed_channels(alert, route)
    subject, body, url = _message(alert, recovered, event)
    log_rows = []
    recipients = sorted({c.target for c in channels if c.kind == AlertChannel.Kind.EMAIL})
    if not channels:
        recipients = _member_emails(alert)
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
        result = send_webhook(c.target, payload(alert, recovered, c.kind, event))
        log_rows.append({"channel": c.kind, "to": c.target, "result": result})
    event = event or ("recovered" if recovered else "opened")
    stamp = timezone.now().isoformat()
    alert.deliveries = [*alert.deliveries, *({**r, "event": event, "at": stamp} for r in log_rows)]
    Alert.objects.filter(pk=alert.pk).update(deliveries=alert.deliveries)
    return log_rows
