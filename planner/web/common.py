"""What every project page shares: the navigator, readiness and the caller's capabilities."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from planner.checklist.evidence import Evidence
from planner.checklist.patterns import analyse
from planner.checklist.readiness import current, project_readiness
from planner.checklist.registry import STEPS_BY_NUMBER
from planner.models import IntegrationProject
from planner.web.permissions import can


def project_context(
    request: HttpRequest, project: IntegrationProject, evidence: Evidence | None = None
) -> dict:
    if evidence is None:
        evidence, readiness = current(project)
    else:
        readiness = project_readiness(project, evidence)
    role = request.membership.role
    return {
        "project": project,
        "membership": request.membership,
        "evidence": evidence,
        "readiness": readiness,
        "can_edit": can(role, "edit"),
        "can_manage": can(role, "manage"),
    }


NAVIGATOR = "planner/project_base.html#navigator"


def htmx_fragment(
    request: HttpRequest,
    project: IntegrationProject,
    html: str,
    *,
    step: int | None = None,
    also: tuple[str, ...] = (),
    extend: Callable[[dict], None] | None = None,
) -> HttpResponse:
    """A fragment plus, out of band, the navigator and the other partials an edit affects.

    So readiness, the step's rule list and inventory counts update without a reload.
    """
    ctx = project_context(request, project)
    ev = ctx["evidence"]
    if step is not None:
        ctx["step"] = STEPS_BY_NUMBER[step]
        ctx["step_readiness"] = ctx["readiness"].for_step(step)
    ctx["analysis"] = analyse(ev.systems, ev.connections)
    if extend is not None:
        extend(ctx)
    ctx["oob"] = True
    parts = [render_to_string(name, ctx, request=request) for name in (NAVIGATOR, *also)]
    return HttpResponse(html + "".join(parts))
