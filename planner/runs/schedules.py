"""Beat entries (django-celery-beat, database-backed) for scheduled validation runs."""

from django_celery_beat.models import IntervalSchedule, PeriodicTask

from planner.models import RunSchedule
from planner.runs.beat import drop_entry, put_interval_entry

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
    return put_interval_entry(
        entry_name(schedule.connection_id),
        TASK,
        1,
        PERIODS[RunSchedule.Every(schedule.every)],
        {"connection_id": schedule.connection_id},
        f"Validation run of {schedule.connection} ({schedule.every}).",
    )


def drop_schedule(connection_id: int) -> None:
    drop_entry(entry_name(connection_id))
