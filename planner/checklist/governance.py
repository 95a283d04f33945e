"""The governance inventory across projects: every connection with its owners, SLAs (the
success criteria), retention, personal data, last security review and when the next is due;
and the annual architecture review beside the monthly/quarterly health reviews."""

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta

from planner.filesafety import neutralise
from planner.models import (
    Connection,
    ConnectionOwnership,
    GoLive,
    IntegrationProject,
    PersonalField,
    SecurityReview,
    SuccessCriterion,
    TrainingPlan,
)

# A security review holds for a year; the architecture is reviewed once a year after go-live.
SECURITY_REVIEW_VALID = timedelta(days=365)


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year + years, day=28)


def next_architecture_review(start: date | None, today: date) -> date | None:
    """The first anniversary of `start` (go-live, or planned go-live) that is not past."""
    if start is None:
        return None
    years = 1
    while _add_years(start, years) < today:
        years += 1
    return _add_years(start, years)


def go_live_dates(project_ids: list[int]) -> dict[int, date]:
    """The go-live of each project: when it was marked live, else its planned date."""
    planned = dict(
        TrainingPlan.objects.filter(
            project_id__in=project_ids, go_live_on__isnull=False
        ).values_list("project_id", "go_live_on")
    )
    live = {
        pid: created.date()
        for pid, created in GoLive.objects.filter(project_id__in=project_ids).values_list(
            "project_id", "created_at"
        )
    }
    return {**planned, **live}


@dataclass(frozen=True)
class GovernanceRow:
    project: IntegrationProject
    connection: Connection
    live: bool
    data_owner: str
    integration_owner: str
    incident_resolver: str
    slas: str
    retention: str
    personal_data: str
    last_review: date | None
    reviewer: str
    next_review_due: date | None
    review_status: str  # "ok", "overdue" or "never reviewed"
    next_architecture_review: date | None

    @property
    def flagged(self) -> bool:
        return self.review_status != "ok"


def inventory(projects: list[IntegrationProject], today: date) -> list[GovernanceRow]:
    """One row per connection of `projects`, in a fixed number of queries."""
    ids = [p.pk for p in projects]
    by_id = {p.pk: p for p in projects}
    connections = Connection.objects.filter(project_id__in=ids).select_related("source", "target")
    owners = {o.connection_id: o for o in ConnectionOwnership.objects.filter(project_id__in=ids)}
    reviews = {r.connection_id: r for r in SecurityReview.objects.filter(project_id__in=ids)}
    personal: dict[int, list[str]] = {}
    for connection_id, field in PersonalField.objects.filter(project_id__in=ids).values_list(
        "mapping__connection_id", "mapping__target_field"
    ):
        personal.setdefault(connection_id, []).append(field)
    slas: dict[int, list[str]] = {}
    for c in SuccessCriterion.objects.filter(project_id__in=ids):
        slas.setdefault(c.project_id, []).append(str(c))
    live = set(GoLive.objects.filter(project_id__in=ids).values_list("project_id", flat=True))
    starts = go_live_dates(ids)
    rows = []
    for c in connections:
        o, r = owners.get(c.pk), reviews.get(c.pk)
        last = r.reviewed_on if r else None
        due = last + SECURITY_REVIEW_VALID if last else None
        status = "never reviewed" if due is None else ("overdue" if due < today else "ok")
        rows.append(
            GovernanceRow(
                project=by_id[c.project_id],
                connection=c,
                live=c.project_id in live,
                data_owner=o.data_owner if o else "",
                integration_owner=o.integration_owner if o else "",
                incident_resolver=o.incident_resolver if o else "",
                slas="; ".join(slas.get(c.project_id, [])),
                retention=r.retention if r else "",
                personal_data=", ".join(sorted(personal.get(c.pk, []))),
                last_review=last,
                reviewer=r.reviewer if r else "",
                next_review_due=due,
                review_status=status,
                next_architecture_review=next_architecture_review(starts.get(c.project_id), today),
            )
        )
    rows.sort(key=lambda row: (row.project.name, str(row.connection)))
    return rows


CSV_HEADERS = (
    "project",
    "connection",
    "live",
    "data owner",
    "integration owner",
    "resolves incidents",
    "SLAs",
    "retention",
    "personal data",
    "last security review",
    "reviewer",
    "next review due",
    "review status",
    "next architecture review",
)


def _cell(value) -> str:
    # The one neutraliser of every export: = + - @, a tab or a carriage return first.
    return neutralise("" if value is None else str(value))


def inventory_csv(rows: list[GovernanceRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADERS)
    for r in rows:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    r.project.name,
                    r.connection,
                    "yes" if r.live else "no",
                    r.data_owner,
                    r.integration_owner,
                    r.incident_resolver,
                    r.slas,
                    r.retention,
                    r.personal_data,
                    r.last_review.isoformat() if r.last_review else "",
                    r.reviewer,
                    r.next_review_due.isoformat() if r.next_review_due else "",
                    r.review_status,
                    r.next_architecture_review.isoformat() if r.next_architecture_review else "",
                )
            ]
        )
    return out.getvalue()
