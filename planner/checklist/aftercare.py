"""After go-live: the improvement backlog and the changelog.

Mapping edits made while the project is live are written to the changelog by the mapping's
save paths (the grid, the row forms, the spreadsheet import), in the saving transaction:
never by a signal, never on a read.
"""

from datetime import date, timedelta

from django.utils import timezone

from planner.checklist.evidence import Evidence, by_project
from planner.models import (
    ChangelogEntry,
    Connection,
    FieldMapping,
    GoLive,
    Improvement,
    IntegrationProject,
)

# Once live, the backlog is gone through at least this often.
BACKLOG_REVIEW_DAYS = 31

_ACTIONS = {"+": "added", "~": "changed", "-": "deleted"}


def is_live(project_id: int) -> bool:
    return GoLive.objects.current().filter(project_id=project_id).exists()


def load_live_since(evidences: list[Evidence]) -> None:
    """Fill the go-live date cache of every evidence object that lacks it, in one query."""
    missing = [ev for ev in evidences if "_live_since" not in ev.__dict__]
    if not missing:
        return
    newest: dict[int, GoLive] = {}
    in_force = GoLive.objects.current().filter(project_id__in=[ev.project.pk for ev in missing])
    for live in in_force.only("pk", "project_id", "created_at"):
        newest.setdefault(live.project_id, live)  # newest first
    for ev in missing:
        live = newest.get(ev.project.pk)
        ev.__dict__["_live_since"] = timezone.localdate(live.created_at) if live else None


def live_since(ev: Evidence) -> date | None:
    """The day the project went live (the go-live in force), None when it is not live."""
    load_live_since([ev])
    return ev.__dict__["_live_since"]


def live_of(ev: Evidence) -> bool:
    return live_since(ev) is not None


def load_backlogs(evidences: list[Evidence]) -> None:
    """Fill the backlog cache of every evidence object that lacks it, in one query."""
    missing = [ev for ev in evidences if "_backlog" not in ev.__dict__]
    if not missing:
        return
    rows = Improvement.objects.filter(project_id__in=[ev.project.pk for ev in missing])
    items = by_project(rows.select_related("criterion"))
    for ev in missing:
        backlog = ev.__dict__["_backlog"] = items[ev.project.pk]
        connections = ev.connections_by_id
        for item in backlog:
            if item.connection_id in connections:
                item.connection = connections[item.connection_id]


def backlog_of(ev: Evidence) -> list[Improvement]:
    load_backlogs([ev])
    return ev.__dict__["_backlog"]


def changelog_of(ev: Evidence, limit: int = 200) -> list[ChangelogEntry]:
    cached = ev.__dict__.get("_changelog")
    if cached is None:
        rows = ChangelogEntry.objects.filter(project=ev.project).select_related("author")
        cached = ev.__dict__["_changelog"] = list(rows[:limit])
        connections = ev.connections_by_id
        for entry in cached:
            if entry.connection_id in connections:
                entry.connection = connections[entry.connection_id]
    return cached


def backlog_review_due(reviewed_on: date | None, live_since: date | None, today: date) -> bool:
    """Once live, the backlog is gone through every BACKLOG_REVIEW_DAYS, counted from the
    last review or, before the first, from the go-live."""
    if live_since is None:
        return False
    last = max(d for d in (reviewed_on, live_since) if d is not None)
    return today - last > timedelta(days=BACKLOG_REVIEW_DAYS)


def record_mapping_change(project: IntegrationProject, mapping_id: int) -> ChangelogEntry | None:
    """After a mapping row was saved or deleted: if the project is live, a changelog entry
    naming who changed what, pointing at that version in the history. Call it after the save,
    in the same transaction."""
    if not is_live(project.pk):
        return None
    versions = list(
        FieldMapping.history.filter(id=mapping_id)
        .select_related("history_user")
        .order_by("-history_date", "-history_id")[:2]
    )
    if not versions:
        return None
    new = versions[0]
    old = versions[1] if len(versions) > 1 else None
    action = _ACTIONS.get(new.history_type, "changed")
    detail = ""
    if action == "changed" and old is not None:
        changes = new.diff_against(old).changes
        fields = [c.field for c in changes if c.field not in ("version", "updated_at")]
        if not fields:
            return None  # nothing a reader would call a change (e.g. only re-saved)
        detail = "; ".join(
            f"{c.field}: {c.old!r} → {c.new!r}"
            for c in changes
            if c.field not in ("version", "updated_at")
        )[:2000]
    summary = f"Mapping row {new.source_field or '—'} → {new.target_field} {action}"
    return ChangelogEntry.objects.create(
        project=project,
        connection_id=new.connection_id
        if Connection.objects.filter(pk=new.connection_id).exists()
        else None,
        author=new.history_user,
        summary=summary[:300],
        detail=detail,
        origin=ChangelogEntry.Origin.MAPPING,
        mapping_id=mapping_id,
        mapping_history_id=new.history_id,
        changed_at=new.history_date,
    )


def record_mapping_import(
    project: IntegrationProject, connection: Connection, count: int, replace: bool, user
) -> ChangelogEntry | None:
    """A spreadsheet import into a live project: one entry per connection it touched."""
    if not is_live(project.pk):
        return None
    how = "replaced the mapping with" if replace else "added"
    return ChangelogEntry.objects.create(
        project=project,
        connection=connection,
        author=user if getattr(user, "is_authenticated", False) else None,
        summary=f"Spreadsheet import {how} {count} row{'s' if count != 1 else ''}"[:300],
        origin=ChangelogEntry.Origin.MAPPING,
    )
