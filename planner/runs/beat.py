"""Keeping one named interval entry of the database-backed beat schedule (django-celery-beat)
in step with the record it serves: scheduled validation runs and freshness measurements."""

import json

from django_celery_beat.models import IntervalSchedule, PeriodicTask


def put_interval_entry(
    name: str, task: str, every: int, period: str, kwargs: dict, description: str
) -> PeriodicTask:
    """Create or change the entry `name` to run `task(**kwargs)` every `every` `period`."""
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    entry, _ = PeriodicTask.objects.update_or_create(
        name=name,
        defaults={
            "task": task,
            "interval": interval,
            "kwargs": json.dumps(kwargs),
            "enabled": True,
            "description": description,
        },
    )
    return entry


def drop_entry(name: str) -> None:
    # .delete() per object, so django-celery-beat notices the change (its signal).
    for entry in PeriodicTask.objects.filter(name=name):
        entry.delete()
