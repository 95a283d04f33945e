"""The go-live page: one verdict with every blocking reason linked, and marking the project live."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from planner.checklist import golive
from planner.models import IntegrationProject
from planner.web.common import project_context
from planner.web.permissions import can, project_access


@project_access("view", write="manage")
def golive_page(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    if request.method == "POST":
        try:
            golive.mark_live(project, request.user)
        except golive.GoLiveRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{project.name} is live. Health reviews are scheduled.")
            return redirect("planner:reviews", project_id=project.pk)
        return redirect("planner:golive", project_id=project.pk)
    ctx = project_context(request, project)
    ctx.update(
        verdict=golive.verdict(project, ctx["evidence"]),
        can_mark_live=can(request.membership.role, "manage"),
        max_run_age_days=golive.max_run_age().days,
    )
    return render(request, "planner/golive.html", ctx)
