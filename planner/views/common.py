"""What every project page shares: the navigator, readiness and the caller's capabilities."""

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from ..evidence import Evidence
from ..models import IntegrationProject
from ..permissions import can
from ..readiness import project_readiness


def project_context(
    request: HttpRequest, project: IntegrationProject, evidence: Evidence | None = None
) -> dict:
    evidence = evidence or Evidence.load(project)
    role = request.membership.role
    return {
        "project": project,
        "membership": request.membership,
        "evidence": evidence,
        "readiness": project_readiness(project, evidence),
        "can_edit": can(role, "edit"),
        "can_manage": can(role, "manage"),
    }


def navigator_oob(request: HttpRequest, project: IntegrationProject) -> str:
    """The step navigator, marked to replace itself out of band after an htmx edit."""
    ctx = project_context(request, project)
    ctx["oob"] = True
    return render_to_string("planner/project_base.html#navigator", ctx, request=request)


def htmx_fragment(
    request: HttpRequest, project: IntegrationProject, html: str, status: int = 200
) -> HttpResponse:
    """A fragment plus the refreshed navigator, so readiness updates without a reload."""
    return HttpResponse(html + navigator_oob(request, project), status=status)
