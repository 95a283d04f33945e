"""Each project's readiness as lists show it (percent, blocked or not), stored by the write
path so that a list of many projects reads one row each instead of every step's rows.

Every write to a project ends with `after_write` (the web's write wrapper and the API's writes):
it records the sign-offs the write made stale and, once the write has committed, stores the
project's standing (`ProjectStanding`) stamped with the revision and the day it was computed
at, from the same `readiness.current` every project page reads (and keeps, so the page shown
after the write does not compute it again). `stored` gives the rows that still hold: the
revision's token is the project's current one and the day is today. Any other project (written
by no write path: raw SQL, a bulk update, a restore; or a new day) is computed when read, and
nothing is stored on a read.
"""

from datetime import date
from functools import partial

from django.db import connection, transaction
from django.utils import timezone

from planner.checklist import readiness, revision
from planner.checklist.signoff import record_stale_signoffs
from planner.models import IntegrationProject, ProjectStanding, SignOffStale


def after_write(project: IntegrationProject) -> list[SignOffStale]:
    """What every successful write to a project ends with: the sign-offs it made stale are
    recorded (returned), and its standing is stored after the commit."""
    events = record_stale_signoffs(project)
    transaction.on_commit(partial(store, project))
    return events


def store(project: IntegrationProject) -> ProjectStanding | None:
    """Store the project's standing at its revision now (None when it is inside a
    transaction, whose own writes are not counted yet, or has never been counted)."""
    if connection.in_atomic_block:
        return None
    # The revision is read before the rows (`current_keyed`): what is stored under a token is
    # never older than the content that token names.
    (pk, now, day), (_, ready) = readiness.current_keyed(project)
    if not now.token:
        return None
    standing, _ = ProjectStanding.objects.update_or_create(
        project_id=pk,
        defaults={
            "revision_token": now.token,
            "day": day,
            "percent": ready.percent,
            "blocked": ready.blocked,
        },
    )
    return standing


def stored(project_ids: list[int], day: date | None = None) -> dict[int, ProjectStanding]:
    """The stored standings that hold now, by project id, in one query: stamped with the
    project's current revision token and computed today."""
    day = day or timezone.localdate()
    rows = revision.stamped_rows(
        ProjectStanding,
        ["project_id", "revision_token", "day", "percent", "blocked"],
        project_ids,
        's."day" = %s',
        [connection.ops.adapt_datefield_value(day)],
    )
    return {
        pk: ProjectStanding(
            project_id=pk, revision_token=token, day=d, percent=percent, blocked=bool(blocked)
        )
        for pk, token, d, percent, blocked in rows
    }
