"""Invitations: an account made for someone by a colleague, waiting for its first password."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Invitation(models.Model):
    """The pending invitation of an account that has never set a password.

    The link itself is a token (see `planner.accounts.invitations`); this row says the account
    is waiting for it, where the person was invited and by whom. Accepting the invitation or
    deactivating the account deletes the row, so "invited" is exactly "has a row".
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="invitation"
    )
    project = models.ForeignKey(
        "IntegrationProject", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    sent_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"invitation of {self.user}"
