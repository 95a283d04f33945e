"""Exports of the PDF runbook, each kept with the version of the project it was made from."""

from django.conf import settings
from django.db import models

from .projects import IntegrationProject


def _export_path(export: "RunbookExport", filename: str) -> str:
    # Under MEDIA_ROOT, never served directly: downloads go through a permission-checked view.
    return f"runbooks/{export.project_id}/{filename}"


class RunbookExport(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="runbook_exports"
    )
    version_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=200, blank=True)
    file = models.FileField(upload_to=_export_path, max_length=300, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="runbook_exports",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)  # the heartbeat of a running export
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Runbook {self.short_hash} ({self.get_status_display()})"

    @property
    def short_hash(self) -> str:
        return self.version_hash[:12]

    @property
    def active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)
