"""The governance inventory across the user's projects, as a page and as CSV."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from planner.checklist.governance import inventory, inventory_csv
from planner.models import IntegrationProject


def _rows(request: HttpRequest):
    # Only the projects the user is a member of, whatever their role: it is read-only.
    projects = list(IntegrationProject.objects.filter(memberships__user=request.user))
    return inventory(projects, timezone.localdate())


def governance(request: HttpRequest) -> HttpResponse:
    rows = _rows(request)
    overdue = sum(r.flagged for r in rows)
    return render(request, "planner/governance.html", {"rows": rows, "overdue": overdue})


def governance_csv(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(inventory_csv(_rows(request)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="governance-inventory.csv"'
    return response
