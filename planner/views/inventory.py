from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ..models import IntegrationProject
from ..patterns import analyse
from ..permissions import project_access
from .common import project_context
from .rows import KINDS, table_context


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
