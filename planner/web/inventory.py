"""The system inventory: systems and connections, the tables step 2 and step 3 build on."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from planner.checklist.patterns import analyse
from planner.models import Connection, IntegrationProject, System
from planner.web.common import project_context
from planner.web.forms import ConnectionForm, SystemForm
from planner.web.permissions import project_access
from planner.web.rows import PK, RowKind, number_text, table_context

INVENTORY_SUMMARY = "planner/inventory.html#inventory-summary"


def _inventory_page(p: IntegrationProject, obj=None) -> str:
    return reverse("planner:inventory", kwargs={"project_id": p.pk})


SYSTEMS = RowKind(
    "system",
    "system",
    System,
    SystemForm,
    ("System", "Kind", "Owner", "Notes"),
    lambda s: [s.name, s.get_kind_display(), s.owner, s.notes],
    lambda ev: ev.systems,
    _inventory_page,
    delete_note="Its connections are deleted too.",
    delete_refreshes_page=True,
    also=(INVENTORY_SUMMARY,),
    extra_urls=(("settings_url", "planner:system_settings", {"system_id": PK}),),
)
CONNECTIONS = RowKind(
    "connection",
    "connection",
    Connection,
    ConnectionForm,
    ("From", "To", "Direction", "Trigger", "Frequency", "Per day", "Peak day"),
    lambda c: [
        str(c.source),
        str(c.target),
        c.get_direction_display(),
        c.get_trigger_display(),
        c.get_frequency_display(),
        number_text(c.volume_per_day),
        number_text(c.peak_per_day),
    ],
    lambda ev: ev.connections,
    _inventory_page,
    also=(INVENTORY_SUMMARY,),
)


@project_access("view")
def inventory(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    ctx = project_context(request, project)
    ev = ctx["evidence"]
    ctx.update(
        systems_table=table_context(request, project, SYSTEMS, ev),
        connections_table=table_context(request, project, CONNECTIONS, ev),
        analysis=analyse(ev.systems, ev.connections),
    )
    return render(request, "planner/inventory.html", ctx)
