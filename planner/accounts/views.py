"""The invitation link (anonymous), asking for a new one, and the staff people page."""

from collections.abc import Callable
from functools import wraps

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.http import require_POST

from planner.accounts import invitations
from planner.accounts.invitations import LinkState, Status
from planner.models import Membership

# The account has no password to check yet: the token is the proof, so sign in without one.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


class RenewForm(forms.Form):
    email = forms.EmailField(label="Your email address", max_length=254)


def _invited_user(uidb64: str):
    try:
        pk = force_str(urlsafe_base64_decode(uidb64))
        # Only a pending invitation: a deactivated account's old link must not reactivate it.
        pending = get_user_model().objects.filter(invitation__isnull=False, is_active=False)
        return pending.filter(pk=int(pk)).first()
    except (ValueError, TypeError, OverflowError):
        return None


@login_not_required
def invite_accept(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    user = _invited_user(uidb64)
    state = invitations.invite_tokens.state(user, token) if user else LinkState.INVALID
    if state is not LinkState.VALID:
        status = 410 if state is LinkState.EXPIRED else 404
        ctx = {"state": state, "form": RenewForm(), "days": settings.AETHON_INVITE_DAYS}
        return render(request, "accounts/invite_unusable.html", ctx, status=status)
    form = SetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = invitations.accept(user, form)
        login(request, user, backend=MODEL_BACKEND)
        messages.success(request, "Your password is set and you are signed in. Welcome!")
        if project is not None and Membership.objects.filter(project=project, user=user).exists():
            return redirect("planner:overview", project_id=project.pk)
        return redirect("planner:project_list")
    return render(request, "accounts/invite_accept.html", {"form": form, "invited": user})


@login_not_required
@require_POST
def invite_renew(request: HttpRequest) -> HttpResponse:
    form = RenewForm(request.POST)
    if not form.is_valid():
        ctx = {"state": LinkState.EXPIRED, "form": form, "days": settings.AETHON_INVITE_DAYS}
        return render(request, "accounts/invite_unusable.html", ctx, status=400)
    invitations.renew(form.cleaned_data["email"])
    return render(request, "accounts/invite_renewed.html", {"email": form.cleaned_data["email"]})


def staff_only(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can manage people's accounts.")
        return view(request, *args, **kwargs)

    return wrapper


@staff_only
def people(request: HttpRequest) -> HttpResponse:
    users = (
        get_user_model()
        .objects.order_by("username")
        .select_related("invitation")
        .prefetch_related(
            Prefetch("memberships", queryset=Membership.objects.select_related("project"))
        )
    )
    rows = []
    for user in users:
        invited = hasattr(user, "invitation")
        if user.is_active:
            status = Status.ACTIVE
        else:
            status = Status.INVITED if invited else Status.DEACTIVATED
        rows.append({"user": user, "status": status, "memberships": list(user.memberships.all())})
    return render(request, "accounts/people.html", {"rows": rows})


@staff_only
@require_POST
def person_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=pk)
    if user == request.user:
        messages.error(request, "You cannot deactivate your own account.")
    else:
        invitations.deactivate(user)
        messages.success(request, f"{user.username} is deactivated: they can no longer sign in.")
    return redirect("accounts:people")


@staff_only
@require_POST
def person_reinvite(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=pk)
    if user.is_active:
        messages.error(request, f"{user.username} is active already; deactivate them first.")
    elif not user.email:
        messages.error(request, f"{user.username} has no email address to send a link to.")
    else:
        invitations.send_invitation(user, invited_by=request.user)
        messages.success(request, f"A new invitation link was sent to {user.email}.")
    return redirect("accounts:people")
