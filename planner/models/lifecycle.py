"""What outlives a deleted project: the record that it was deleted, by whom and what it held."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ProjectDeletion(models.Model):
    """One deleted project. Kept for staff: the project's own rows are gone, this is not."""

    project_id = models.PositiveBigIntegerField(help_text="The deleted project's id.")
    name = models.CharField(max_length=200)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    deleted_by_name = models.CharField(max_length=150)
    deleted_at = models.DateTimeField(default=timezone.now)
    # What the project held when it went, e.g. {"systems": 2, "mapping rows": 14, "members": 3}.
    contents = models.JSONField(default=dict)

    class Meta:
        ordering = ["-deleted_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} deleted by {self.deleted_by_name}"

    @property
    def counts(self) -> dict:
        return {k: v for k, v in self.contents.items() if k != "audit trail"}

    @property
    def signoffs_kept(self) -> list[dict]:
        return (self.contents.get("audit trail") or {}).get("sign-offs", [])

    @property
    def go_lives_kept(self) -> list[dict]:
        return (self.contents.get("audit trail") or {}).get("go-lives", [])
