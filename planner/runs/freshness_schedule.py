"""Beat entries (django-celery-beat, database-backed) for measuring freshness criteria."""

from django_celery_beat.models import IntervalSchedule, PeriodicTask

from planner.metrics import freshness as lag
from planner.models import SuccessCriterion
from planner.runs.beat import drop_entry, put_interval_entry

TASK = "planner.freshness_tasks.measure"


def entry_name(criterion_id: int) -> str:
    return f"aethon: measure freshness of criterion {criterion_id}"


def sync_measurement(criterion: SuccessCriterion) -> PeriodicTask | None:
    """Make the criterion's beat entry match it: created, changed, or removed when it can no
    longer be measured (another figure, no connection, no duration target)."""
    # The measurement module reads systems (polars): loaded when an entry is synced.
    from planner.runs.freshness import problem

    if problem(criterion):
        drop_measurement(criterion.pk)
        return None
    every = lag.every_minutes(criterion)
    return put_interval_entry(
        entry_name(criterion.pk),
        TASK,
        every,
        IntervalSchedule.MINUTES,
        {"criterion_id": criterion.pk},
        f"Freshness of '{criterion.metric}' every {every} min.",
    )


def drop_measurement(criterion_id: int) -> None:
    drop_entry(entry_name(criterion_id))


def sync_connection(connection_id: int) -> None:
    """The freshness fields of a connection changed: its criteria's entries follow."""
    for criterion in SuccessCriterion.objects.filter(freshness_connection_id=connection_id):
        sync_measurement(criterion)
