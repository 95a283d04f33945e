"""Beat entries (django-celery-beat, database-backed) for measuring freshness criteria."""

import json

from django_celery_beat.models import IntervalSchedule, PeriodicTask

from planner.models import SuccessCriterion
from planner.runs.freshness import every_minutes, problem

TASK = "planner.freshness_tasks.measure"


def entry_name(criterion_id: int) -> str:
    return f"aethon: measure freshness of criterion {criterion_id}"


def sync_measurement(criterion: SuccessCriterion) -> PeriodicTask | None:
    """Make the criterion's beat entry match it: created, changed, or removed when it can no
    longer be measured (another figure, no connection, no duration target)."""
    if problem(criterion):
        drop_measurement(criterion.pk)
        return None
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=every_minutes(criterion), period=IntervalSchedule.MINUTES
    )
    task, _ = PeriodicTask.objects.update_or_create(
        name=entry_name(criterion.pk),
        defaults={
            "task": TASK,
            "interval": interval,
            "kwargs": json.dumps({"criterion_id": criterion.pk}),
            "enabled": True,
            "description": f"Freshness of '{criterion.metric}' every {interval.every} min.",
        },
    )
    return task


def drop_measurement(criterion_id: int) -> None:
    # .delete() per object, so django-celery-beat notices the change (its signal).
    for task in PeriodicTask.objects.filter(name=entry_name(criterion_id)):
        task.delete()


def sync_connection(connection_id: int) -> None:
    """The freshness fields of a connection changed: its criteria's entries follow."""
    for criterion in SuccessCriterion.objects.filter(freshness_connection_id=connection_id):
        sync_measurement(criterion)
