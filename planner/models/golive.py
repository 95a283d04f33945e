"""Go-live records: when a project was marked live, and when that was taken back.

Both are events of the audit trail (immutable). A project is live while its newest `GoLive`
has no `GoLiveRevert`; going live again after a revert adds a new `GoLive`.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from .projects import IntegrationProject
from .signoff import ImmutableModel, ImmutableQuerySet


class GoLiveQuerySet(ImmutableQuerySet):
    def current(self) -> "GoLiveQuerySet":
        """The go-lives still in force: not reverted, newest first."""
        return self.filter(revert__isnull=True).order_by("-created_at", "-pk")


class GoLive(ImmutableModel):
    """The project was marked live: by whom, when, and the evidence it had at that moment."""

    # PROTECT: the record outlives neither its project nor its user silently.
    project = models.ForeignKey(
        IntegrationProject, on_delete=models.PROTECT, related_name="go_lives"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    snapshot = models.JSONField(default=dict)
    history = HistoricalRecords()

    objects = GoLiveQuerySet.as_manager()

    class Meta:
        verbose_name = "go-live"
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.project} live since {self.created_at:%d %b %Y}"


class GoLiveRevert(ImmutableModel):
    """A go-live taken back ("back to not live"): by whom, when and why."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.PROTECT, related_name="go_live_reverts"
    )
    go_live = models.OneToOneField(GoLive, on_delete=models.PROTECT, related_name="revert")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "go-live revert"

    def __str__(self) -> str:
        return f"{self.go_live.project} back to not live on {self.created_at:%d %b %Y}"
