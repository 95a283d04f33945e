"""Invitations: a pending account and a set-password link built on Django's token machinery.

An invited person gets an inactive account with an unusable password and a link carrying a
token. The token is signed over the account's password and last login (Django's
`PasswordResetTokenGenerator`, with its own salt so a reset token is no invitation), so it
works once: setting the password changes both. Sending a new link makes the account's
password unusable again, which voids the old ones.
"""

from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_encode

from planner.models import IntegrationProject, Invitation, Membership


class LinkState(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


class InviteTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "planner.accounts.invitations.InviteTokenGenerator"

    @property
    def lifetime(self) -> timedelta:
        return timedelta(days=settings.AETHON_INVITE_DAYS)

    def issued_at(self, user, token: str) -> datetime | None:
        """When the token was made, if it is genuine for this account as it stands now."""
        try:
            ts_b36, _ = token.split("-")
            ts = base36_to_int(ts_b36)
        except ValueError:
            return None
        for secret in [self.secret, *self.secret_fallbacks]:
            if constant_time_compare(self._make_token_with_timestamp(user, ts, secret), token):
                return datetime(2001, 1, 1) + timedelta(seconds=ts)
        return None

    def state(self, user, token: str) -> LinkState:
        # Told apart so that an expired link can say so and offer a new one.
        issued = self.issued_at(user, token) if user is not None else None
        if issued is None:
            return LinkState.INVALID
        if self._now() - issued > self.lifetime:
            return LinkState.EXPIRED
        return LinkState.VALID

    def check_token(self, user, token) -> bool:
        return bool(user and token) and self.state(user, token) is LinkState.VALID


invite_tokens = InviteTokenGenerator()


class Status(StrEnum):
    ACTIVE = "active"
    INVITED = "invited"
    DEACTIVATED = "deactivated"


def status_of(user) -> Status:
    if user.is_active:
        return Status.ACTIVE
    if Invitation.objects.filter(user=user).exists():
        return Status.INVITED
    return Status.DEACTIVATED


def free_username(email: str) -> str:
    users = get_user_model().objects
    name, n = email[:150], 1
    while users.filter(username__iexact=name).exists():
        n += 1
        suffix = f"-{n}"
        name = email[: 150 - len(suffix)] + suffix
    return name


def accept_url(user) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    path = reverse(
        "accounts:invite_accept", kwargs={"uidb64": uid, "token": invite_tokens.make_token(user)}
    )
    return settings.AETHON_BASE_URL + path


def send_invitation(user, invited_by=None, project: IntegrationProject | None = None) -> None:
    """(Re)issue the account's invitation: old links stop working, a new one is mailed."""
    with transaction.atomic():
        user.set_unusable_password()
        user.is_active = False
        user.save(update_fields=["password", "is_active"])
        invitation, _ = Invitation.objects.update_or_create(
            user=user,
            defaults={"invited_by": invited_by, "sent_at": timezone.now()},
        )
        if project is not None:
            invitation.project = project
            invitation.save(update_fields=["project"])
    context = {
        "user": user,
        "project": invitation.project,
        "invited_by": invited_by,
        "url": accept_url(user),
        "days": settings.AETHON_INVITE_DAYS,
    }
    send_mail(
        render_to_string("accounts/invitation_subject.txt", context).strip(),
        render_to_string("accounts/invitation_email.txt", context),
        None,
        [user.email],
    )


def invite_by_email(email: str, project: IntegrationProject, role: str, invited_by) -> Membership:
    """A pending account for an address nobody uses yet, made a member and sent its link."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(
            username=free_username(email), email=email, password=None, is_active=False
        )
        membership = Membership.objects.create(project=project, user=user, role=role)
    send_invitation(user, invited_by=invited_by, project=project)
    return membership


def add_member(user, project: IntegrationProject, role: str, invited_by) -> Membership:
    """An existing account made a member; one still waiting on its invitation gets a new link."""
    membership = Membership.objects.create(project=project, user=user, role=role)
    if status_of(user) is Status.INVITED:
        send_invitation(user, invited_by=invited_by, project=project)
    return membership


def accept(user, password_form) -> IntegrationProject | None:
    """Set the password and activate; the project the person was invited to, to land on."""
    invitation = Invitation.objects.filter(user=user).select_related("project").first()
    project = invitation.project if invitation else None
    with transaction.atomic():
        password_form.save(commit=False)
        user.is_active = True
        user.save()
        Invitation.objects.filter(user=user).delete()
    return project


def renew(email: str) -> None:
    """Send a fresh link to a pending account of that address, if there is one.

    The caller says the same thing either way: whether an address has an account is not for
    an anonymous visitor to learn.
    """
    invitation = (
        Invitation.objects.filter(user__email__iexact=email.strip(), user__is_active=False)
        .select_related("user", "invited_by", "project")
        .first()
    )
    if invitation is not None:
        send_invitation(invitation.user, invitation.invited_by, invitation.project)


def deactivate(user) -> None:
    """No sign-in, and no link sent earlier (invitation or reset) works any more."""
    with transaction.atomic():
        user.is_active = False
        if not user.has_usable_password():
            # Tokens are signed over the password hash: a new unusable one voids them.
            user.set_unusable_password()
        user.save(update_fields=["is_active", "password"])
        Invitation.objects.filter(user=user).delete()
