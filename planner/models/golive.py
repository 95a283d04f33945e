"""The go-live record: by whom, when, and the readiness it had at that moment."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from .projects import IntegrationProject
from .signoff import ImmutableModel


class GoLive(ImmutableModel):
    """The project was marked live: by whom, when, and the readiness it had at that moment."""

    project = models.OneToOneField(
        IntegrationProject, on_delete=models.PROTECT, related_name="go_live"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    snapshot = models.JSONField(default=dict)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "go-live"

    def __str__(self) -> str:
        return f"{self.project} live since {self.created_at:%d %b %Y}"
