"""Project templates saved from a project: a JSON snapshot of its plan (see project_templates)."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ProjectTemplate(models.Model):
    """A saved snapshot of a project's plan, to start new projects from.

    It holds content only (systems, connections, the steps' records); never runs, sign-offs,
    endpoints' settings or secrets, members or history. Visible to its author and to the
    members of the project it was saved from, who could read that content anyway.
    """

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    source = models.ForeignKey(
        "IntegrationProject", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    snapshot = models.JSONField()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name
