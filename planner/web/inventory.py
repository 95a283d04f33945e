from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from planner.checklist.patterns import analyse
from planner.models import IntegrationProject
from planner.web.common import project_context
from planner.web.permissions import project_access
from planner.web.rows import KINDS, table_context


@project_access("view")
def inventory(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    ctx = project_context(request, project)
    ev = ctx["evidence"]
    ctx.update(
        systems_table=table_context(request, project, KINDS["system"], ev),
        connections_table=table_context(request, project, KINDS["connection"], ev),
        analysis=analyse(ev.systems, ev.connections),
    )
    return render(request, "planner/inventory.html", ctx)
