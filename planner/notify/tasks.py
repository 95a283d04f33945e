"""Mail of notifications, sent by a worker after the write committed, and the daily digest."""

from celery import shared_task

from planner.notify import service


@shared_task(name=service.EMAIL_TASK, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def email_notification(notification_id: int) -> bool:
    return service.email_notification(notification_id)


@shared_task(name=service.DIGEST_TASK)
def send_digests() -> list[int]:
    return service.send_digests()
