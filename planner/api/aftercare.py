"""After go-live in the API: the improvement backlog and the changelog, as step 7 shows them."""

from datetime import date, datetime

from django.utils import timezone
from ninja import Schema

from planner.checklist import aftercare
from planner.checklist.evidence import Evidence

from .views import Error, _access, api


class ImprovementOut(Schema):
    id: int
    title: str
    connection_id: int | None = None
    criterion_id: int | None = None
    metric_key: str
    kpi: str
    expected_effect: str
    priority: str
    status: str
    due_on: date | None = None


class ChangelogEntryOut(Schema):
    id: int
    changed_at: datetime
    author: str | None = None
    summary: str
    detail: str
    origin: str
    connection_id: int | None = None
    mapping_id: int | None = None
    mapping_history_id: int | None = None


class AftercareOut(Schema):
    live: bool
    backlog_reviewed_on: date | None = None
    backlog_review_due: bool
    backlog: list[ImprovementOut]
    changelog: list[ChangelogEntryOut]


@api.get(
    "/projects/{project_id}/aftercare",
    response={200: AftercareOut, 403: Error, 404: Error},
    summary="After go-live: the improvement backlog (each tied to a KPI) and the changelog",
)
def project_aftercare(request, project_id: int):
    ev = Evidence.load(_access(request, project_id))
    training = getattr(ev.project, "training_plan", None)
    reviewed = training.backlog_reviewed_on if training else None
    live = aftercare.live_of(ev)
    return {
        "live": live,
        "backlog_reviewed_on": reviewed,
        "backlog_review_due": live and aftercare.backlog_review_due(reviewed, timezone.localdate()),
        "backlog": [
            {
                "id": i.pk,
                "title": i.title,
                "connection_id": i.connection_id,
                "criterion_id": i.criterion_id,
                "metric_key": i.metric_key,
                "kpi": i.kpi_text,
                "expected_effect": i.expected_effect,
                "priority": i.get_priority_display().lower(),
                "status": i.status,
                "due_on": i.due_on,
            }
            for i in aftercare.backlog_of(ev)
        ],
        "changelog": [
            {
                "id": e.pk,
                "changed_at": e.changed_at,
                "author": e.author.get_username() if e.author else None,
                "summary": e.summary,
                "detail": e.detail,
                "origin": e.origin,
                "connection_id": e.connection_id,
                "mapping_id": e.mapping_id,
                "mapping_history_id": e.mapping_history_id,
            }
            for e in aftercare.changelog_of(ev)
        ],
    }
