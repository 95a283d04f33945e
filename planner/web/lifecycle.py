"""A project's life cycle: archive (read-only, off the dashboard), restore, delete.

Archiving is enforced where every write passes, `web.permissions.membership_for`; the views
here only flip the flag. Deleting keeps a `ProjectDeletion` for staff, and the history of every
deleted row stays in the history tables (django-simple-history records each delete).
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from planner.models import (
    FieldMapping,
    GoLive,
    IntegrationProject,
    ProjectDeletion,
    SignOff,
    TestCase,
    ValidationRun,
)
from planner.web.common import project_context
from planner.web.permissions import project_access


def archive(project: IntegrationProject) -> None:
    IntegrationProject.objects.filter(pk=project.pk).update(archived_at=timezone.now())


def restore(project: IntegrationProject) -> None:
    IntegrationProject.objects.filter(pk=project.pk).update(archived_at=None)


def audit_records(project: IntegrationProject) -> list[str]:
    """The immutable records (sign-offs, go-lives) that forbid deleting the project."""
    found = []
    if n := SignOff.objects.filter(project=project).count():
        found.append(f"{n} sign-off{'s' if n != 1 else ''}")
    if GoLive.objects.filter(project=project).exists():
        found.append("a go-live record")
    return found


def delete_project(project: IntegrationProject, user) -> ProjectDeletion:
    """Delete the project and everything in it; the deletion itself is recorded."""
    contents = {
        "systems": project.systems.count(),
        "connections": project.connections.count(),
        "mapping rows": FieldMapping.objects.filter(project=project).count(),
        "test cases": TestCase.objects.filter(project=project).count(),
        "validation runs": ValidationRun.objects.filter(project=project).count(),
        "members": project.memberships.count(),
    }
    with transaction.atomic():
        record = ProjectDeletion.objects.create(
            project_id=project.pk,
            name=project.name,
            deleted_by=user,
            deleted_by_name=user.get_username(),
            contents=contents,
        )
        project.delete()
    return record


class DeleteForm(forms.Form):
    confirm_name = forms.CharField(label="Type the project's name to confirm", max_length=200)

    def __init__(self, *args, project: IntegrationProject, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_confirm_name(self) -> str:
        typed = self.cleaned_data["confirm_name"]
        if typed.strip() != self.project.name:
            raise forms.ValidationError(
                f"That is not the project's name: type {self.project.name} exactly."
            )
        return typed


@project_access("manage", archived_ok=True)
@require_POST
def project_archive(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    if request.POST.get("restore"):
        restore(project)
        messages.success(request, f"'{project}' is restored: it is on the dashboard again.")
        return redirect("planner:overview", project_id=project.pk)
    archive(project)
    messages.success(
        request, f"'{project}' is archived: read-only, listed under Archived on the dashboard."
    )
    return redirect("planner:project_list")


@project_access("manage", archived_ok=True)
def project_delete(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    blockers = audit_records(project)
    form = DeleteForm(request.POST or None, project=project)
    if request.method == "POST" and not blockers and form.is_valid():
        try:
            delete_project(project, request.user)
        except ProtectedError:
            blockers = ["records the audit trail keeps"]
        else:
            messages.success(request, f"Deleted '{form.cleaned_data['confirm_name'].strip()}'.")
            return redirect("planner:project_list")
    ctx = project_context(request, project)
    ctx.update(form=form, blockers=blockers)
    status = 409 if request.method == "POST" and blockers else 200
    return render(request, "planner/project_delete.html", ctx, status=status)


def deleted_projects(request: HttpRequest) -> HttpResponse:
    """The deletion log, for staff."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff can read the deletion log.")
    deletions = ProjectDeletion.objects.all()
    return render(request, "planner/deleted_projects.html", {"deletions": deletions})
