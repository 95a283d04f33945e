"""Sign-offs: who approved which exact version of a step, and when that approval went stale.

A sign-off and its stale event are records of something that happened: they are never edited
or deleted. `save()` refuses updates, `delete()` refuses, and their querysets refuse bulk
update and delete; the admin shows them read-only and no view changes them.
"""

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .projects import IntegrationProject, Role


class Immutable(Exception):
    """An attempt to change or delete a record of the audit trail."""


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise Immutable(f"{self.model.__name__} records cannot be changed.")

    def delete(self):
        raise Immutable(f"{self.model.__name__} records cannot be deleted.")


class ImmutableModel(models.Model):
    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise Immutable(f"{type(self).__name__} records cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise Immutable(f"{type(self).__name__} records cannot be deleted.")


SIGN_OFF_ROLES = (Role.OWNER, Role.APPROVER)  # the roles with the "sign_off" capability
DEFAULT_REQUIRED_ROLES = [Role.APPROVER.value]


class ApproverRequirement(VersionedModel):
    """The roles that must approve one step of one project. No row means the default."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="approver_requirements"
    )
    step = models.PositiveSmallIntegerField()
    roles = models.JSONField(default=list, blank=True)
    approvers_needed = models.PositiveSmallIntegerField(
        "approvers needed", default=1, help_text="How many different people must approve."
    )
    # Separation of duties: the person who made the step's last change, and the project's
    # owner, cannot be its only approvers unless the owner turns this off.
    independent = models.BooleanField(
        "independent approver",
        default=True,
        help_text="At least one approver is neither the last editor of the step nor the owner.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["step"]
        constraints = [
            models.UniqueConstraint(fields=["project", "step"], name="one_requirement_per_step")
        ]

    def __str__(self) -> str:
        names = ", ".join(Role(r).label for r in self.roles) or "nobody"
        return f"Step {self.step}: {names}"


class SignOff(ImmutableModel):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approved"
        CHANGES = "changes", "Changes requested"

    # PROTECT: a sign-off outlives neither its project nor its signer silently.
    project = models.ForeignKey(
        IntegrationProject, on_delete=models.PROTECT, related_name="signoffs"
    )
    step = models.PositiveSmallIntegerField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signoffs"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    content_hash = models.CharField("version hash", max_length=64)
    # How many of this signer's decisions on this step had gone stale before this one. A step
    # changed and changed back has its old hash again, but the old decision stays stale; the
    # round tells the new decision on that version apart from a repeat of a live one.
    round = models.PositiveIntegerField("sign-off round", default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["step", "-created_at", "-pk"]
        verbose_name = "sign-off"
        constraints = [
            # One decision per signer and version of a step: a second vote on the same content
            # (repeated or changed) would be counted twice or silently replace the first.
            models.UniqueConstraint(
                fields=["project", "step", "user", "content_hash", "round"],
                name="one_decision_per_signer_and_version",
            )
        ]

    def __str__(self) -> str:
        who = self.user.get_username() if self.user_id else "?"
        return f"Step {self.step} {self.get_decision_display().lower()} by {who}"

    @property
    def short_hash(self) -> str:
        return self.content_hash[:12]


class SignOffStale(ImmutableModel):
    """The moment a sign-off stopped matching its step: the step changed after it."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.PROTECT, related_name="signoff_stale_events"
    )
    signoff = models.OneToOneField(SignOff, on_delete=models.PROTECT, related_name="stale_event")
    step = models.PositiveSmallIntegerField()
    current_hash = models.CharField("hash when detected", max_length=64)
    reason = models.CharField(max_length=300, blank=True)
    notified = models.TextField("asked again", blank=True, help_text="Emails sent, one a line.")
    detected_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-detected_at", "-pk"]
        verbose_name = "stale sign-off"

    def __str__(self) -> str:
        return str(self.signoff)


class StepContent(models.Model):
    """The content hash of one signed step as it stands, stored by the write path
    (`planner.checklist.signoff.store_step_hashes`, after every write to the project) so that
    reading whether a sign-off is current is a comparison, not a hash of every artifact.

    Derived data, not history: it is replaced whenever the step changes, and dropped when the
    step has no live sign-off left. It holds only at the project revision it was computed at
    (`revision_token`, see `planner.checklist.revision`): a write no write path stored hashes
    after (raw SQL, a bulk update, a data migration, a restore) moves the revision, and a
    signed step whose row is of another revision, or has none, is hashed when read."""

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="step_contents"
    )
    step = models.PositiveSmallIntegerField()
    content_hash = models.CharField("version hash", max_length=64)
    # The token of the project revision the hash was computed at ("": none known).
    revision_token = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "step"], name="one_content_hash_per_step")
        ]

    def __str__(self) -> str:
        return f"Step {self.step}: {self.content_hash[:12]}"


class ProjectStanding(models.Model):
    """What a list of projects shows of one project's readiness, stored by the write path
    (`planner.checklist.standing.after_write`, after every write to the project) so that the
    portfolio dashboard and the API's project list read one row per project instead of every
    step's rows.

    Derived data like `StepContent`: it holds only at the project revision (`revision_token`)
    and on the day (`day`: one rule asks for a review every so many days) it was computed at;
    any other row is ignored and the standing computed when read."""

    project = models.OneToOneField(
        IntegrationProject, on_delete=models.CASCADE, primary_key=True, related_name="standing"
    )
    revision_token = models.CharField(max_length=64)
    day = models.DateField()
    percent = models.PositiveSmallIntegerField()
    # A readiness rule fails (a missing or stale sign-off included): not ready, whatever
    # the runs say.
    blocked = models.BooleanField()

    def __str__(self) -> str:
        return f"{self.project_id}: {self.percent} %{' blocked' if self.blocked else ''}"
