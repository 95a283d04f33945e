"""Team work in the API: assign work (owners and editors), read a project's comments, and the
caller's own open work and notifications. The same functions as the pages."""

from datetime import date, datetime

from django.http import Http404
from ninja import Schema, Status
from ninja.errors import HttpError

from planner.models import Comment
from planner.notify import service as inbox
from planner.teamwork import assignments
from planner.teamwork.assignments import AssignmentRefused

from .views import Error, _access, api


class AssignIn(Schema):
    kind: str
    ref: int = 0
    assignee_id: int | None = None
    due_date: date | None = None


class AssignmentOut(Schema):
    id: int | None = None
    project_id: int
    kind: str
    ref: int
    title: str
    assignee: str | None = None
    due_date: date | None = None
    done: bool = False
    overdue: bool = False


class CommentOut(Schema):
    id: int
    step: int | None = None
    mapping_id: int | None = None
    author: str
    body: str
    created_at: datetime
    edited_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_with_change: str = ""


class NotificationOut(Schema):
    id: int
    project_id: int | None = None
    kind: str
    text: str
    url: str
    created_at: datetime
    read: bool


@api.put(
    "/projects/{project_id}/assignments",
    response={200: AssignmentOut, 400: Error, 403: Error, 404: Error},
    summary="Assign a step, test case, rollback rehearsal or backlog item (owners, editors)",
)
def put_assignment(request, project_id: int, payload: AssignIn):
    project = _access(request, project_id, "edit")
    try:
        item = assignments.work_item(project, payload.kind, payload.ref)
    except Http404:
        raise HttpError(404, "No such piece of work in this project.") from None
    try:
        saved = assignments.assign(item, payload.assignee_id, payload.due_date, request.user)
    except AssignmentRefused as refused:
        return Status(400, {"detail": f"{refused.field}: {refused}"})
    return {
        "id": saved.pk if saved else None,
        "project_id": project.pk,
        "kind": item.kind,
        "ref": item.ref,
        "title": item.title,
        "assignee": saved.assignee.get_username() if saved else None,
        "due_date": saved.due_date if saved else None,
    }


@api.get("/me/work", response=list[AssignmentOut], summary="Work assigned to you, overdue first")
def my_work(request):
    return [
        {
            "id": a.pk,
            "project_id": a.project_id,
            "kind": a.kind,
            "ref": assignments.ref_of(a),
            "title": a.title,
            "assignee": request.user.get_username(),
            "due_date": a.due_date,
            "overdue": a.overdue,
        }
        for a in assignments.open_work(request.user)
    ]


@api.get(
    "/projects/{project_id}/comments",
    response={200: list[CommentOut], 403: Error, 404: Error},
    summary="The project's comments, oldest first",
)
def list_comments(request, project_id: int):
    project = _access(request, project_id)
    rows = Comment.objects.filter(project=project).select_related("author").order_by("pk")
    return [
        {
            "id": c.pk,
            "step": c.step,
            "mapping_id": c.mapping_id,
            "author": c.author.get_username(),
            "body": c.body,
            "created_at": c.created_at,
            "edited_at": c.edited_at,
            "resolved_at": c.resolved_at,
            "resolved_with_change": c.change_summary,
        }
        for c in rows
    ]


@api.get("/me/notifications", response=list[NotificationOut], summary="Your notifications")
def my_notifications(request):
    return [
        {
            "id": n.pk,
            "project_id": n.project_id,
            "kind": n.kind,
            "text": n.text,
            "url": n.url,
            "created_at": n.created_at,
            "read": n.read_at is not None,
        }
        for n in inbox.visible(request.user)[:200]
    ]
