"""Mail that follows a recorded sign-off event, sent by a worker after the write committed."""

import logging

from celery import shared_task
from django.core.mail import send_mail

from planner.checklist.signoff import ASK_AGAIN_TASK, ask_again_message
from planner.models import SignOffStale

log = logging.getLogger(__name__)


@shared_task(name=ASK_AGAIN_TASK, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def ask_again(event_id: int) -> None:
    """Ask the step's approvers to sign off again; the event says who and why."""
    event = (
        SignOffStale.objects.select_related("project", "signoff__user").filter(pk=event_id).first()
    )
    if event is None:
        return
    subject, body, recipients = ask_again_message(event)
    if recipients:
        send_mail(subject, body, None, recipients)
