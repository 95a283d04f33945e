from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from planner.accounts import invitations
from planner.models import IntegrationProject, Membership, Role
from planner.web.common import project_context
from planner.web.forms import InviteForm, RoleForm
from planner.web.permissions import project_access


def _page(request, project, invite_form=None, status=200) -> HttpResponse:
    ctx = project_context(request, project)
    ctx.update(
        members=Membership.objects.filter(project=project).select_related(
            "user", "user__invitation"
        ),
        invite_form=invite_form or InviteForm(project=project),
        roles=Role.choices,
    )
    template = "planner/members.html#members" if request.htmx else "planner/members.html"
    return render(request, template, ctx, status=status)


@project_access("view", write="manage")
def members(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    if request.method == "POST":
        form = InviteForm(request.POST, project=project)
        if form.is_valid():
            who, role = form.cleaned_data["who"], form.cleaned_data["role"]
            if isinstance(who, str):
                invitations.invite_by_email(who, project, role, invited_by=request.user)
                messages.success(
                    request, f"Invited {who} as {role}: they get an email to set a password."
                )
            else:
                invitations.add_member(who, project, role, invited_by=request.user)
                messages.success(request, f"{who.username} joined as {role}.")
            if not request.htmx:
                return redirect("planner:members", project_id=project.pk)
            return _page(request, project)
        return _page(request, project, invite_form=form)
    return _page(request, project)


LAST_OWNER = "A project needs at least one owner: make someone else owner first."


def _back(request, project) -> HttpResponse:
    """After a change to a membership: the list again (htmx), or back to the page."""
    if request.htmx:
        return _page(request, project)
    return redirect("planner:members", project_id=project.pk)


def _last_owner(membership: Membership) -> bool:
    owners = Membership.objects.filter(project=membership.project, role=Role.OWNER)
    return membership.role == Role.OWNER and owners.count() == 1


@project_access("manage")
@require_POST
def member_role(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    membership = get_object_or_404(Membership, project=project, pk=pk)
    form = RoleForm(request.POST, instance=membership)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles: owner, editor, approver, viewer.")
    elif _last_owner(Membership.objects.get(pk=pk)) and form.cleaned_data["role"] != Role.OWNER:
        messages.error(request, LAST_OWNER)
    else:
        form.save()
        messages.success(request, f"{membership.user.username} is now {membership.role}.")
    return _back(request, project)


@project_access("manage")
@require_POST
def member_remove(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    membership = get_object_or_404(Membership, project=project, pk=pk)
    if _last_owner(membership):
        messages.error(request, LAST_OWNER)
    else:
        membership.delete()
        messages.success(request, f"Removed {membership.user.username} from the project.")
    return _back(request, project)
