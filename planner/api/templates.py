"""API: the templates a user can start from, and a project created from one."""

from ninja import Field, Schema, Status
from ninja.errors import HttpError

from planner.checklist import golive
from planner.project_templates import service
from planner.project_templates.snapshot import SnapshotError

from .views import Error, ProjectOut, api


class SourceOut(Schema):
    source: str = Field(
        description="What to send as `source`: builtin:<key>, template:<id>, project:<id>"
    )
    kind: str
    title: str
    description: str


class FromTemplateIn(Schema):
    source: str
    name: str
    business_problem: str = ""


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200 or "\x00" in name:
        raise HttpError(400, "name: give the new project a name of 1 to 200 characters.")
    return name


@api.get("/templates", response=list[SourceOut], summary="Templates you can start a project from")
def list_templates(request):
    return [
        {"source": s.value, "kind": s.kind, "title": s.title, "description": s.description}
        for s in service.sources_for(request.user)
    ]


@api.post(
    "/projects/from-template",
    response={201: ProjectOut, 400: Error, 404: Error},
    summary="Create a project from a template (built-in, saved, or a project you can view)",
)
def create_from_template(request, payload: FromTemplateIn):
    name = _checked_name(payload.name)
    if "\x00" in payload.business_problem:
        raise HttpError(400, "business_problem: must not contain NUL characters.")
    try:
        project = service.create_from_template(
            request.user, payload.source, name, payload.business_problem
        )
    except service.TemplateNotFound as exc:
        raise HttpError(404, str(exc)) from None
    except SnapshotError as exc:
        raise HttpError(400, f"source: {exc}") from None
    v = golive.verdict(project)
    out = {"id": project.pk, "name": project.name, "role": "owner"}
    return Status(201, {**out, "readiness_percent": v.percent, "ready": v.ready, "live": False})
