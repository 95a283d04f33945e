"""Health-review cadence -> due dates, and the database-backed schedule that starts reviews.

The schedule lives in the database: `ReviewSchedule.next_due` plus one django-celery-beat
entry per live project (a one-off clocked task at `next_due`), and a dispatcher entry every
5 minutes (migration 0005) as the safety net. Both call `claim_due`, which moves `next_due`
past *now* in one conditional update, so a review starts once per due date however many
beat ticks fire, and once in all for due dates missed while workers were down.
"""

import calendar
import json
from datetime import date, datetime

from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, PeriodicTask

from planner.models import GoLive, IntegrationProject, ReviewSchedule

TASK = "planner.review_tasks.scheduled_review"
MAX_OCCURRENCES = 1200  # 100 years of monthly reviews: a bound for the date walk


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def occurrence(schedule: ReviewSchedule, start: datetime, n: int) -> datetime:
    """The n-th review (1-based) after `start`."""
    first = max(schedule.first_count, 0)
    if n <= first:
        months = n * max(schedule.first_every_months, 1)
    else:
        months = first * max(schedule.first_every_months, 1) + (n - first) * max(
            schedule.then_every_months, 1
        )
    return add_months(start, months)


def due_dates(schedule: ReviewSchedule, start: datetime, count: int = 6) -> list[datetime]:
    return [occurrence(schedule, start, n) for n in range(1, count + 1)]


def next_after(schedule: ReviewSchedule, start: datetime, moment: datetime) -> datetime:
    """The first occurrence strictly after `moment`."""
    for n in range(1, MAX_OCCURRENCES):
        due = occurrence(schedule, start, n)
        if due > moment:
            return due
    raise ValueError("no review date within the bound")


def missed_between(schedule: ReviewSchedule, start: datetime, after: datetime, upto: datetime):
    """Occurrences in (after, upto]: the ticks one catch-up review stands for."""
    out = []
    for n in range(1, MAX_OCCURRENCES):
        due = occurrence(schedule, start, n)
        if due > upto:
            break
        if due > after:
            out.append(due)
    return out


def first_year(schedule: ReviewSchedule, start: date | datetime) -> list[date]:
    """The review dates in the year after `start` under the schedule's cadence."""
    if schedule.paused:
        return []
    dates = missed_between(schedule, start, start, add_months(start, 12))
    return [timezone.localtime(d).date() if isinstance(d, datetime) else d for d in dates]


def in_force(project: IntegrationProject) -> ReviewSchedule:
    """The project's cadence, or the default one while nobody has edited it (not saved: a
    page that only shows it must not write)."""
    return ReviewSchedule.objects.filter(project=project).first() or ReviewSchedule(project=project)


def cadence_text(schedule: ReviewSchedule) -> str:
    """'every month for the first 3 reviews, then every 3 months'."""
    if schedule.paused:
        return "paused"

    def every(months: int) -> str:
        return "every month" if months == 1 else f"every {months} months"

    first, then = max(schedule.first_every_months, 1), max(schedule.then_every_months, 1)
    count = max(schedule.first_count, 0)
    if count == 0 or first == then:
        return every(then)
    reviews = "review" if count == 1 else f"{count} reviews"
    return f"{every(first)} for the first {reviews}, then {every(then)}"


def dates_in_force(
    project: IntegrationProject,
    planned_go_live: date | None,
    schedule: ReviewSchedule | None = None,
) -> list[date]:
    """What the runbook and step 7 print: the first year of reviews as actually scheduled,
    from the go-live if the project is live, else from the planned go-live date."""
    schedule = schedule or in_force(project)
    start = _start(project) or planned_go_live
    return first_year(schedule, start) if start else []


def entry_name(project_id: int) -> str:
    return f"aethon: health review of project {project_id}"


def schedule_of(project: IntegrationProject) -> ReviewSchedule:
    schedule, _ = ReviewSchedule.objects.get_or_create(project=project)
    return schedule


def _start(project: IntegrationProject) -> datetime | None:
    live = GoLive.objects.current().filter(project=project).only("created_at").first()
    return live.created_at if live else None


def recompute(schedule: ReviewSchedule, now: datetime | None = None) -> ReviewSchedule:
    """After a cadence edit: next_due from the new cadence, and the beat entry to match."""
    now = now or timezone.now()
    start = _start(schedule.project)
    next_due = None if (start is None or schedule.paused) else next_after(schedule, start, now)
    ReviewSchedule.objects.filter(pk=schedule.pk).update(next_due=next_due)
    schedule.next_due = next_due
    sync_entry(schedule)
    return schedule


def schedule_after_go_live(live: GoLive) -> ReviewSchedule:
    return recompute(schedule_of(live.project), live.created_at)


def sync_entry(schedule: ReviewSchedule) -> PeriodicTask | None:
    """Make the project's beat entry a one-off at `next_due` (or remove it)."""
    if schedule.next_due is None:
        for task in PeriodicTask.objects.filter(name=entry_name(schedule.project_id)):
            task.delete()  # one by one, so django-celery-beat notices
        return None
    clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=schedule.next_due)
    task, _ = PeriodicTask.objects.update_or_create(
        name=entry_name(schedule.project_id),
        defaults={
            "task": TASK,
            "clocked": clocked,
            "interval": None,
            "crontab": None,
            "one_off": True,
            "enabled": True,
            "kwargs": json.dumps({"project_id": schedule.project_id}),
            "description": f"Health review of {schedule.project} due {schedule.next_due:%Y-%m-%d}",
        },
    )
    return task


def claim_due(project_id: int, now: datetime | None = None) -> tuple[datetime, int] | None:
    """If the project's review is due, move next_due past now and return (due, missed).

    One conditional update decides: two dispatchers (or the beat entry and the dispatcher)
    cannot both claim the same due date.
    """
    now = now or timezone.now()
    with transaction.atomic():
        schedule = (
            ReviewSchedule.objects.select_related("project")
            .filter(project_id=project_id, paused=False, next_due__lte=now)
            # An archived project's review waits: restored, it gets one (missed ones counted).
            .filter(project__archived_at__isnull=True)
            .first()
        )
        if schedule is None:
            return None
        start = _start(schedule.project)
        if start is None:
            return None
        due = schedule.next_due
        # Due dates after the one claimed that also passed: this one review stands for them.
        missed = len(missed_between(schedule, start, due, now))
        new_due = next_after(schedule, start, now)
        claimed = ReviewSchedule.objects.filter(pk=schedule.pk, next_due=due).update(
            next_due=new_due
        )
        if not claimed:
            return None
    schedule.next_due = new_due
    sync_entry(schedule)
    return due, missed


def due_project_ids(now: datetime | None = None) -> list[int]:
    now = now or timezone.now()
    return list(
        ReviewSchedule.objects.filter(
            paused=False, next_due__lte=now, project__archived_at__isnull=True
        ).values_list("project_id", flat=True)
    )
