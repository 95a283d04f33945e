from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from planner.models import IntegrationProject, Membership, Role
from planner.web.common import project_context
from planner.web.concurrency import StaleEdit, keep_input_after_conflict, save_versioned
from planner.web.forms import ProjectForm
from planner.web.permissions import project_access


def project_create(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            project = form.save(commit=False)
            project.owner = request.user
            project.save()
            Membership.objects.create(project=project, user=request.user, role=Role.OWNER)
        messages.success(request, f"Created '{project}'. Start with step 1: the objectives.")
        return redirect("planner:step", project_id=project.pk, number=1)
    return render(request, "planner/project_form.html", {"form": form})


@project_access("view")
def project_overview(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    ctx = project_context(request, project)
    return render(request, "planner/overview.html", ctx)


@project_access("view", write="manage")
def project_settings(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    form = ProjectForm(request.POST or None, instance=project)
    stale = False
    if request.method == "POST" and form.is_valid():
        try:
            save_versioned(form.save(commit=False), form.cleaned_data["expected_version"])
        except StaleEdit as conflict:
            stale = True
            keep_input_after_conflict(
                form,
                conflict,
                "Someone else saved these settings while you were editing. Your input is kept; "
                "save again to keep it.",
            )
        else:
            messages.success(request, "Project settings saved.")
            return redirect("planner:overview", project_id=project.pk)
    ctx = project_context(request, project)
    ctx.update(form=form, stale=stale)
    return render(request, "planner/project_settings.html", ctx)
