"""Single sign-on by OpenID Connect (mozilla-django-oidc), on only when configured.

Settings turn it on when OIDC_RP_CLIENT_ID is set: then this backend joins the
authentication backends and `urlpatterns` below are mounted at /oidc/. People are matched
by email address (the library's own matching, case-insensitive); a verified address is
required, since the address is what links the provider's person to an Aethon account. An
account is created at the first sign-in only when AETHON_OIDC_CREATE_USERS allows it. A
pending invitation is accepted by signing in (the provider vouches for the address); a
deactivated account stays refused (the library refuses inactive users).
"""

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.urls import path
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from planner.accounts.invitations import free_username
from planner.models import Invitation

logger = logging.getLogger(__name__)


class EmailMatchingBackend(OIDCAuthenticationBackend):
    def authenticate(self, request, **kwargs):
        # A doubtful token ends on the sign-in page saying SSO failed, not on a bare 400.
        try:
            return super().authenticate(request, **kwargs)
        except SuspiciousOperation as refusal:
            logger.warning("Single sign-on refused: %s", refusal)
            return None

    def verify_claims(self, claims) -> bool:
        # Unverified addresses would let anyone who can type a colleague's address into the
        # provider take over that colleague's account.
        return super().verify_claims(claims) and claims.get("email_verified") is True

    def verify_token(self, token, **kwargs):
        payload = super().verify_token(token, **kwargs)
        # The library leaves the audience and issuer unchecked; a token minted for another
        # client of the same provider must not sign anyone in here.
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token was issued for another client.")
        issuer = getattr(settings, "OIDC_OP_ISSUER", "")
        if issuer and payload.get("iss") != issuer:
            raise SuspiciousOperation("The ID token comes from another issuer.")
        return payload

    def create_user(self, claims):
        email = claims["email"].strip().lower()
        return self.UserModel.objects.create_user(
            free_username(email),
            email=email,
            first_name=claims.get("given_name", "")[:150],
            last_name=claims.get("family_name", "")[:150],
        )

    def update_user(self, user, claims):
        if not user.is_active and Invitation.objects.filter(user=user).exists():
            with transaction.atomic():
                user.is_active = True
                user.save(update_fields=["is_active"])
                Invitation.objects.filter(user=user).delete()
        return user


urlpatterns = [
    path(
        "callback/",
        login_not_required(OIDCAuthenticationCallbackView.as_view()),
        name="oidc_authentication_callback",
    ),
    path(
        "authenticate/",
        login_not_required(OIDCAuthenticationRequestView.as_view()),
        name="oidc_authentication_init",
    ),
]


def sso_context(request) -> dict:
    """The sign-in page offers single sign-on only when it is configured."""
    return {"sso_name": settings.AETHON_OIDC_NAME if settings.AETHON_OIDC_ENABLED else ""}
