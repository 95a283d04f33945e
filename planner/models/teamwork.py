"""Working as a team: who does what by when, comment threads, and notifications.

None of these is a checklist artifact: assigning or discussing a step never makes its
sign-off stale (the registry's artifacts do not include them).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from .mapping import FieldMapping
from .projects import IntegrationProject
from .reviews import FeedbackItem
from .testing import TestCase


class WorkKind(models.TextChoices):
    STEP = "step", "Step"
    TEST_CASE = "test_case", "Test case"
    REHEARSAL = "rehearsal", "Rollback rehearsal"
    # The improvement backlog after go-live is the project's feedback and incident items.
    BACKLOG = "backlog", "Backlog item"


class Assignment(models.Model):
    """One piece of work, its assignee and due date; one per step, case, rehearsal or item."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="assignments"
    )
    kind = models.CharField(max_length=12, choices=WorkKind.choices)
    step = models.PositiveSmallIntegerField(null=True, blank=True)
    test_case = models.ForeignKey(
        TestCase, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    backlog_item = models.ForeignKey(
        FeedbackItem, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    due_date = models.DateField("due date", null=True, blank=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["due_date", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "step"],
                condition=Q(kind="step"),
                name="one_assignment_per_step",
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(kind="rehearsal"),
                name="one_assignment_per_rehearsal",
            ),
            models.UniqueConstraint(
                fields=["test_case"],
                condition=Q(test_case__isnull=False),
                name="one_assignment_per_test_case",
            ),
            models.UniqueConstraint(
                fields=["backlog_item"],
                condition=Q(backlog_item__isnull=False),
                name="one_assignment_per_backlog_item",
            ),
        ]
        indexes = [models.Index(fields=["assignee", "done_at", "due_date"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.assignee}"


class ReminderSent(models.Model):
    """The marker that a reminder went out: one per assignment, kind and due date, so a retried
    or concurrent beat never mails twice (a changed due date earns new reminders)."""

    class Kind(models.TextChoices):
        DAY_BEFORE = "day_before", "Due tomorrow"
        DUE_TODAY = "due_today", "Due today"

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    due_date = models.DateField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["assignment", "kind", "due_date"], name="one_reminder_per_kind_and_date"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.due_date}"


class Comment(models.Model):
    """A message in the thread of a step or of a mapping row."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="comments"
    )
    step = models.PositiveSmallIntegerField(null=True, blank=True)
    mapping = models.ForeignKey(
        FieldMapping, on_delete=models.CASCADE, null=True, blank=True, related_name="comments"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="comments"
    )
    body = models.TextField(max_length=5000)
    mentions = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # "Resolved with a change": the history row (model slug and history id) of the change.
    change_model = models.CharField(max_length=60, blank=True)
    change_history_id = models.PositiveIntegerField(null=True, blank=True)
    change_summary = models.CharField(max_length=300, blank=True)
    history = HistoricalRecords(excluded_fields=["mentions"])

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(step__isnull=False) | Q(mapping__isnull=False),
                name="comment_has_a_thread",
            )
        ]
        indexes = [models.Index(fields=["project", "step"])]

    def __str__(self) -> str:
        return self.body[:60]

    @property
    def resolved_with_change(self) -> bool:
        return self.change_history_id is not None


class NotificationKind(models.TextChoices):
    MENTION = "mention", "Mention"
    ASSIGNMENT = "assignment", "Assignment"
    REMINDER = "reminder", "Due date reminder"
    SIGNOFF_REQUEST = "signoff_request", "Sign-off request"
    SIGNOFF_STALE = "signoff_stale", "Stale sign-off"
    ALERT = "alert", "Alert"
    RUN_FAILED = "run_failed", "Validation run failed"


class Notification(models.Model):
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    project = models.ForeignKey(
        IntegrationProject,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    text = models.CharField(max_length=300)
    url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # Set when the notification went out by mail (alone or in a digest): never twice.
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["recipient", "read_at"])]

    def __str__(self) -> str:
        return self.text


class NotificationPreference(models.Model):
    class Email(models.TextChoices):
        IMMEDIATE = "immediate", "At once, one mail per notification"
        DIGEST = "digest", "Once a day, a digest"
        OFF = "off", "Never (in the app only)"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    email = models.CharField(max_length=10, choices=Email.choices, default=Email.IMMEDIATE)
    # The day whose digest was claimed: the claim is one conditional UPDATE, so once a day.
    last_digest_on = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user}: {self.get_email_display()}"
