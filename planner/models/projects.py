from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from .base import VersionedModel


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    APPROVER = "approver", "Approver"
    VIEWER = "viewer", "Viewer"


class IntegrationProject(VersionedModel):
    name = models.CharField(max_length=200)
    business_problem = models.TextField(
        help_text="What goes wrong today without this integration, in business terms."
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_projects"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # An archived project is read-only (web.permissions refuses every write) and kept off the
    # dashboard until an owner restores it.
    archived_at = models.DateTimeField(null=True, blank=True, editable=False)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


class Membership(models.Model):
    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")
        ]
        ordering = ["project", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}) on {self.project}"


class System(VersionedModel):
    class Kind(models.TextChoices):
        CRM = "crm", "CRM"
        BILLING = "billing", "Billing"
        SUPPORT = "support", "Support"
        MARKETING = "marketing", "Marketing automation"
        ANALYTICS = "analytics", "Analytics"
        ERP = "erp", "ERP"
        OTHER = "other", "Other"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="systems"
    )
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.OTHER)
    owner = models.CharField(
        max_length=120, blank=True, help_text="Team or person accountable for this system."
    )
    notes = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="unique_system_name")
        ]

    def __str__(self) -> str:
        return self.name


class Connection(VersionedModel):
    """Data flowing between two systems of the inventory."""

    class Direction(models.TextChoices):
        ONE_WAY = "one_way", "One-way (source → target)"
        BIDIRECTIONAL = "bidirectional", "Bidirectional"

    class Trigger(models.TextChoices):
        EVENT = "event", "Event / webhook"
        SCHEDULE = "schedule", "Schedule / batch"
        REQUEST = "request", "On request (API call)"
        MANUAL = "manual", "Manual"

    class Frequency(models.TextChoices):
        REAL_TIME = "real_time", "Real-time"
        MINUTES = "minutes", "Every few minutes"
        HOURLY = "hourly", "Hourly"
        DAILY = "daily", "Daily batch"
        WEEKLY = "weekly", "Weekly"

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="connections"
    )
    source = models.ForeignKey(System, on_delete=models.CASCADE, related_name="outgoing")
    target = models.ForeignKey(System, on_delete=models.CASCADE, related_name="incoming")
    direction = models.CharField(
        max_length=16, choices=Direction.choices, default=Direction.ONE_WAY
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.EVENT)
    frequency = models.CharField(
        max_length=16, choices=Frequency.choices, default=Frequency.REAL_TIME
    )
    volume_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Typical records per day."
    )
    peak_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Records on the busiest day."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["source__name", "target__name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "source", "target"], name="unique_connection"
            ),
            models.CheckConstraint(
                condition=~models.Q(source=models.F("target")), name="connection_not_to_itself"
            ),
        ]

    def __str__(self) -> str:
        arrow = "↔" if self.direction == self.Direction.BIDIRECTIONAL else "→"
        return f"{self.source} {arrow} {self.target}"
