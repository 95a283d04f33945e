"""The beat's due-date reminders."""

from celery import shared_task

from planner.teamwork import assignments


@shared_task(name=assignments.REMINDER_TASK)
def send_reminders() -> int:
    return len(assignments.send_reminders())
