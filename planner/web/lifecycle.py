"""A project's life cycle: archive (read-only, off the dashboard), restore, delete.

Archiving is enforced where every write passes, `web.permissions.membership_for`; the views
here only flip the flag. Deleting keeps a `ProjectDeletion` for staff, and the history of every
deleted row stays in the history tables (django-simple-history records each delete). The
audit trail's own records (sign-offs, go-lives) cannot be changed or deleted one by one; only
the deletion of their whole project removes them, after copying who decided what, and when,
into the deletion log.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from planner.models import (
    FieldMapping,
    GoLive,
    GoLiveRevert,
    IntegrationProject,
    ProjectDeletion,
    SignOff,
    SignOffStale,
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
    """The audit trail's records (sign-offs, go-lives) that deleting the project removes."""
    found = []
    if n := SignOff.objects.filter(project=project).count():
        found.append(f"{n} sign-off{'s' if n != 1 else ''}")
    if n := GoLive.objects.filter(project=project).count():
        found.append(f"{n} go-live record{'s' if n != 1 else ''}")
    return found


def audit_trail(project: IntegrationProject) -> dict:
    """Who approved what and who took the project live, as the deletion log keeps it."""
    signoffs = SignOff.objects.filter(project=project).select_related("user").order_by("pk")
    go_lives = GoLive.objects.filter(project=project).select_related("user").order_by("pk")
    reverts = GoLiveRevert.objects.filter(project=project).select_related("user").order_by("pk")
    return {
        "sign-offs": [
            {
                "step": s.step,
                "by": s.user.get_username(),
                "role": s.role,
                "decision": s.decision,
                "version": s.content_hash,
                "at": s.created_at.isoformat(),
            }
            for s in signoffs
        ],
        "go-lives": [
            {"by": g.user.get_username(), "at": g.created_at.isoformat()} for g in go_lives
        ],
        "go-live reverts": [
            {"by": r.user.get_username(), "reason": r.reason, "go_live": r.go_live_id}
            for r in reverts
        ],
    }


# Dependants first: each row PROTECTs the one after it.
AUDIT_MODELS = (SignOffStale, SignOff, GoLiveRevert, GoLive)


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
            contents={**contents, "audit trail": audit_trail(project)},
        )
        for model in AUDIT_MODELS:
            # A plain queryset: the audit models refuse deletes record by record on purpose.
            models.QuerySet(model).filter(project=project).delete()
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
    form = DeleteForm(request.POST or None, project=project)
    refused = ""
    if request.method == "POST" and form.is_valid():
        try:
            delete_project(project, request.user)
        except ProtectedError as exc:
            names = sorted({type(o)._meta.verbose_name_plural for o in exc.protected_objects})
            refused = f"Nothing was deleted: {', '.join(names)} of this project are protected."
        else:
            messages.success(request, f"Deleted '{form.cleaned_data['confirm_name'].strip()}'.")
            return redirect("planner:project_list")
    ctx = project_context(request, project)
    ctx.update(form=form, audit=audit_records(project), refused=refused)
    return render(request, "planner/project_delete.html", ctx, status=409 if refused else 200)


def deleted_projects(request: HttpRequest) -> HttpResponse:
    """The deletion log, for staff."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff can read the deletion log.")
    deletions = ProjectDeletion.objects.all()
    return render(request, "planner/deleted_projects.html", {"deletions": deletions})
