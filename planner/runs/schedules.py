"""Beat entries (django-celery-beat, database-backed) for scheduled validation runs."""

import json

from django_celery_beat.models import IntervalSchedule, PeriodicTask

from planner.models import RunSchedule

TASK = "planner.validation_tasks.scheduled_validation"
REAPER_NAME = "aethon: reap stale validation runs"
PERIODS = {
    RunSchedule.Every.HOURLY: IntervalSchedule.HOURS,
    RunSchedule.Every.DAILY: IntervalSchedule.DAYS,
}


def entry_name(connection_id: int) -> str:
    return f"aethon: validate connection {connection_id}"


def sync_schedule(schedule: RunSchedule) -> PeriodicTask | None:
    """Make the beat entry match the schedule: created, changed or removed."""
    if schedule.every == RunSchedule.Every.OFF:
        drop_schedule(schedule.connection_id)
        return None
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=1, period=PERIODS[RunSchedule.Every(schedule.every)]
    )
    task, _ = PeriodicTask.objects.update_or_create(
        name=entry_name(schedule.connection_id),
        defaults={
            "task": TASK,
            "interval": interval,
            "kwargs": json.dumps({"connection_id": schedule.connection_id}),
            "enabled": True,
            "description": f"Validation run of {schedule.connection} ({schedule.every}).",
        },
    )
    return task


def drop_schedule(connection_id: int) -> None:
    # .delete() per object, so django-celery-beat notices the change (its signal).
    for task in PeriodicTask.objects.filter(name=entry_name(connection_id)):
        task.delete()
