"""Creating, reading and mailing notifications.

Domain services call `notify` on their write paths (never a page view, never a signal). A
notification is shown only while its recipient is still a member of its project, so leaving
a project hides what it sent. Mails go after the commit, through a Celery task that claims
the notification first: a retried or duplicated task never mails twice.
"""

import logging
from collections.abc import Iterable
from datetime import date

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from planner.models import (
    IntegrationProject,
    Membership,
    Notification,
    NotificationKind,
    NotificationPreference,
)
from planner.task_queue import QueueUnreachable, publish

log = logging.getLogger(__name__)

EMAIL_TASK = "planner.notify_tasks.email_notification"
DIGEST_TASK = "planner.notify_tasks.send_digests"

Email = NotificationPreference.Email


def absolute(url: str) -> str:
    if not url or url.startswith(("http://", "https://")):
        return url
    base = getattr(settings, "AETHON_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    return f"{base}{url}"


def notify(
    recipients: Iterable,
    project: IntegrationProject | None,
    kind: str,
    text: str,
    url: str = "",
    *,
    exclude=None,
    urgent: bool = False,
    mailed: bool = False,
) -> list[Notification]:
    """One notification per recipient (users or user ids) who is an active member of `project`;
    `exclude` (the person who acted) is not told about their own action. Mails are queued
    after the commit for those who want them at once; an `urgent` one (a due-date reminder)
    is mailed at once to digest readers too, never to those who turned mail off. `mailed`:
    the caller's own mail already told them (an alert), so none is sent."""
    ids = {getattr(r, "pk", r) for r in recipients if r is not None}
    ids.discard(getattr(exclude, "pk", exclude))
    if not ids:
        return []
    users = get_user_model().objects.filter(pk__in=ids, is_active=True)
    if project is not None:
        users = users.filter(memberships__project=project)
    stamp = timezone.now() if mailed else None
    made = Notification.objects.bulk_create(
        Notification(
            recipient_id=uid,
            project=project,
            kind=kind,
            text=text[:300],
            url=url[:500],
            emailed_at=stamp,
        )
        for uid in sorted(users.values_list("pk", flat=True))
    )
    if mailed:
        return made
    immediate = wanting_mail_now([n.recipient_id for n in made], urgent)
    for n in made:
        if n.recipient_id in immediate:
            transaction.on_commit(lambda pk=n.pk: queue_email(pk))
    return made


def wanting_mail_now(user_ids: list[int], urgent: bool = False) -> set[int]:
    """Of these users, those whose preference is one mail per notification (the default), and
    for an urgent notification also the digest readers."""
    if not user_ids:
        return set()
    keep = [Email.IMMEDIATE, Email.DIGEST] if urgent else [Email.IMMEDIATE]
    other = set(
        NotificationPreference.objects.filter(user_id__in=user_ids)
        .exclude(email__in=keep)
        .values_list("user_id", flat=True)
    )
    return set(user_ids) - other


def queue_email(notification_id: int) -> None:
    from aethon.celery import app

    try:
        publish(app.tasks[EMAIL_TASK], notification_id)
    except QueueUnreachable:
        # The notification stays in the app, unmailed; the next digest run picks it up.
        log.exception("could not queue the mail of notification %s", notification_id)


def visible(user) -> QuerySet[Notification]:
    """The user's notifications, minus those of projects they no longer belong to."""
    still_member = Membership.objects.filter(project_id=OuterRef("project_id"), user_id=user.pk)
    return Notification.objects.filter(recipient_id=user.pk).filter(
        Q(project__isnull=True) | Exists(still_member)
    )


def unread_count(user) -> int:
    """The bell's figure: one query."""
    return visible(user).filter(read_at__isnull=True).count()


def mark_read(user, notification_id: int | None = None) -> int:
    """Mark one notification (or all of them) read; only the user's own."""
    qs = Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True)
    if notification_id is not None:
        qs = qs.filter(pk=notification_id)
    return qs.update(read_at=timezone.now())


def preference_of(user) -> NotificationPreference:
    return NotificationPreference.objects.filter(user_id=user.pk).first() or (
        NotificationPreference(user=user)
    )


def _claim(qs: QuerySet[Notification]) -> list[Notification]:
    """Mark these notifications mailed and return the ones this call claimed."""
    with transaction.atomic():
        rows = list(
            qs.select_for_update(skip_locked=True, of=("self",)).filter(emailed_at__isnull=True)
        )
        Notification.objects.filter(pk__in=[n.pk for n in rows]).update(emailed_at=timezone.now())
    return rows


def email_notification(notification_id: int) -> bool:
    """Mail one notification to its recipient, once. True if this call sent it."""
    n = Notification.objects.select_related("recipient", "project").filter(pk=notification_id)
    target = n.first()
    if target is None or not target.recipient.email or not target.recipient.is_active:
        return False  # (deactivated since it was notified: no more mail)
    if not visible(target.recipient).filter(pk=notification_id).exists():
        return False
    if not _claim(n):
        return False
    project = f"{target.project.name}: " if target.project else ""
    body = f"{target.text}\n\n{absolute(target.url)}\n" if target.url else f"{target.text}\n"
    body += f"\nChange how Aethon mails you: {absolute('/account/notifications/settings/')}\n"
    try:
        send_mail(f"[Aethon] {project}{target.text}"[:150], body, None, [target.recipient.email])
    except Exception:
        # Give the claim back, so the task's retry (or the digest run) can send it.
        Notification.objects.filter(pk=notification_id).update(emailed_at=None)
        raise
    return True


def digest_text(items: list[Notification]) -> str:
    lines = []
    for n in items:
        where = f"{n.project.name}: " if n.project else ""
        lines.append(f"- {where}{n.text}" + (f"\n  {absolute(n.url)}" if n.url else ""))
    return "\n".join(lines)


def send_digests(today: date | None = None) -> list[int]:
    """Mail each digest reader the notifications not mailed yet, at most once a day; also mails
    what an immediate reader missed because the queue was down. Returns the users mailed."""
    today = today or timezone.localdate()
    mailed = []
    readers = NotificationPreference.objects.filter(email=Email.DIGEST).exclude(
        last_digest_on=today
    )
    for pref in readers.select_related("user"):
        # One conditional UPDATE claims the day: a second worker or a retry finds it taken.
        claimed = (
            NotificationPreference.objects.filter(pk=pref.pk)
            .exclude(last_digest_on=today)
            .update(last_digest_on=today)
        )
        if not claimed or not pref.user.email or not pref.user.is_active:
            continue
        items = _claim(visible(pref.user).select_related("project").order_by("created_at"))
        if not items:
            continue
        body = (
            f"What happened in your Aethon projects since the last digest ({len(items)}):\n\n"
            f"{digest_text(items)}\n\nChange how Aethon mails you: "
            f"{absolute('/account/notifications/settings/')}\n"
        )
        try:
            send_mail(
                f"[Aethon] Your daily digest: {len(items)} new", body, None, [pref.user.email]
            )
        except Exception:
            log.exception("digest of user %s not sent", pref.user_id)
            Notification.objects.filter(pk__in=[n.pk for n in items]).update(emailed_at=None)
            NotificationPreference.objects.filter(pk=pref.pk).update(last_digest_on=None)
            continue
        mailed.append(pref.user_id)
    # Immediate readers' notifications that were never mailed (the queue was down), an hour on.
    cutoff = timezone.now() - timezone.timedelta(hours=1)
    leftover = (
        Notification.objects.filter(emailed_at__isnull=True, created_at__lt=cutoff)
        .exclude(recipient__notification_preference__email__in=[Email.DIGEST, Email.OFF])
        .values_list("pk", flat=True)[:500]
    )
    for pk in list(leftover):
        email_notification(pk)
    return mailed


__all__ = ["NotificationKind", "notify", "unread_count", "visible", "mark_read", "send_digests"]
