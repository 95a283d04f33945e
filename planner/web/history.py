from datetime import datetime

from django.core.exceptions import BadRequest
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from planner.checklist.audit import TRACKED, field_diff, history_of, recent_changes
from planner.models import IntegrationProject
from planner.web.common import project_context
from planner.web.permissions import project_access

PAGE = 50


@project_access("view")
def history(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    before = None
    if request.GET.get("before"):
        try:
            before = datetime.fromisoformat(request.GET["before"])
        except ValueError as exc:
            raise BadRequest("'before' must be an ISO date-time.") from exc
    changes = recent_changes(project, limit=PAGE, before=before)
    ctx = project_context(request, project)
    ctx.update(
        changes=changes,
        next_before=changes[-1].when.isoformat() if len(changes) == PAGE else None,
    )
    return render(request, "planner/history.html", ctx)


def _pick(versions: list, value: str | None, default):
    if not value:
        return default
    try:
        wanted = int(value)
    except ValueError as exc:
        raise BadRequest("Version ids are numbers.") from exc
    for v in versions:
        if v.history_id == wanted:
            return v
    raise Http404("No such version of this record.")


@project_access("view")
def history_object(
    request: HttpRequest, project: IntegrationProject, model: str, object_id: int
) -> HttpResponse:
    if model not in TRACKED:
        raise Http404("Unknown kind of record.")
    versions = list(
        history_of(model, project)
        .filter(id=object_id)
        .select_related("history_user")
        .order_by("-history_date", "-history_id")
    )
    if not versions:
        raise Http404("No history for this record.")
    new = _pick(versions, request.GET.get("b"), versions[0])
    position = versions.index(new)
    default_old = versions[position + 1] if position + 1 < len(versions) else None
    old = _pick(versions, request.GET.get("a"), default_old)
    ctx = project_context(request, project)
    ctx.update(
        model=model,
        label=TRACKED[model]._meta.verbose_name,
        object_id=object_id,
        versions=versions,
        old=old,
        new=new,
        diff=field_diff(model, old, new),
    )
    return render(request, "planner/history_object.html", ctx)
