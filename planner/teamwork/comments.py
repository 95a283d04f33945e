"""Comment threads on a step or a mapping row, with @mentions of the project's members.

A mention resolves only to a member of the comment's project; any other @word stays plain
text and tells nobody. Who may write: the roles that edit or sign off (owner, editor,
approver). Viewers read the threads but do not post: a viewer's role is to follow, and a
thread is part of the work's record (resolutions link changes).
"""

import re
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from planner.checklist.audit import TRACKED
from planner.checklist.registry import STEPS_BY_NUMBER
from planner.models import (
    Comment,
    FieldMapping,
    IntegrationProject,
    Membership,
    NotificationKind,
    Role,
)
from planner.notify.service import notify

COMMENT_ROLES = frozenset({Role.OWNER, Role.EDITOR, Role.APPROVER})
# A username as Django allows it (letters, digits and @.+-_), not ending in punctuation.
MENTION = re.compile(r"(?<![\w@])@([\w.@+-]*[\w])")
MAX_BODY = 5000


class CommentRefused(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Thread:
    """The thread of one step (`step`) or one mapping row (`mapping`)."""

    project: IntegrationProject
    step: int | None = None
    mapping: FieldMapping | None = None

    @property
    def title(self) -> str:
        if self.mapping is not None:
            return f"Mapping row {self.mapping.source_field} → {self.mapping.target_field}"
        return f"Step {self.step}: {STEPS_BY_NUMBER[self.step].title}"

    @property
    def url(self) -> str:
        if self.mapping is not None:
            return reverse("planner:mapping_comments", args=[self.project.pk, self.mapping.pk])
        return reverse("planner:step_comments", args=[self.project.pk, self.step])

    @property
    def filter(self) -> dict:
        if self.mapping is not None:
            return {"mapping": self.mapping}
        return {"step": self.step, "mapping__isnull": True}

    def comments(self) -> QuerySet[Comment]:
        return (
            Comment.objects.filter(project=self.project, **self.filter)
            .select_related("author", "resolved_by")
            .order_by("created_at", "pk")
        )


def step_thread(project: IntegrationProject, number: int) -> Thread:
    if number not in STEPS_BY_NUMBER:
        raise Http404("The checklist has seven steps.")
    return Thread(project, step=number)


def mapping_thread(project: IntegrationProject, mapping_id: int) -> Thread:
    mapping = FieldMapping.objects.filter(project=project, pk=mapping_id).first()
    if mapping is None:
        raise Http404("No such mapping row in this project.")
    return Thread(project, step=2, mapping=mapping)


def can_comment(role: str | None) -> bool:
    return role in COMMENT_ROLES


def mention_candidates(project: IntegrationProject, prefix: str, limit: int = 8) -> list:
    """Members whose username starts with `prefix` (the autocomplete's list)."""
    members = Membership.objects.filter(project=project, user__is_active=True)
    if prefix:
        members = members.filter(user__username__istartswith=prefix)
    return [m.user for m in members.select_related("user").order_by("user__username")[:limit]]


def mentioned_members(project: IntegrationProject, body: str) -> list:
    """The project's members named as @username in `body`; other names are plain text."""
    names = {n.lower() for n in MENTION.findall(body)}
    if not names:
        return []
    members = Membership.objects.filter(project=project).select_related("user")
    return [m.user for m in members if m.user.username.lower() in names]


def _clean(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise CommentRefused("body", "Write something before posting.")
    if len(body) > MAX_BODY:
        raise CommentRefused("body", f"A comment is at most {MAX_BODY} characters.")
    return body


def _tell_mentioned(comment: Comment, thread: Thread, users: list, author) -> None:
    if not users:
        return
    notify(
        users,
        thread.project,
        NotificationKind.MENTION,
        f"{author.get_username()} mentioned you on {thread.title}",
        f"{thread.url}#comment-{comment.pk}",
        exclude=author,
    )


def post(thread: Thread, author, body: str) -> Comment:
    body = _clean(body)
    with transaction.atomic():
        comment = Comment.objects.create(
            project=thread.project,
            step=thread.step,
            mapping=thread.mapping,
            author=author,
            body=body,
        )
        mentioned = mentioned_members(thread.project, body)
        comment.mentions.set(mentioned)
        _tell_mentioned(comment, thread, mentioned, author)
    return comment


def edit(thread: Thread, comment: Comment, user, body: str) -> Comment:
    """Only the author edits; people mentioned for the first time are told."""
    if comment.author_id != user.pk:
        raise CommentRefused("body", "Only its author can edit a comment.")
    body = _clean(body)
    with transaction.atomic():
        before = set(comment.mentions.values_list("pk", flat=True))
        comment.body = body
        comment.edited_at = timezone.now()
        comment.save()
        mentioned = mentioned_members(thread.project, body)
        comment.mentions.set(mentioned)
        _tell_mentioned(comment, thread, [u for u in mentioned if u.pk not in before], user)
    return comment


@dataclass(frozen=True)
class ChangeChoice:
    slug: str
    history_id: int
    label: str

    @property
    def key(self) -> str:
        return f"{self.slug}:{self.history_id}"


def change_choices(thread: Thread, limit: int = 20) -> list[ChangeChoice]:
    """The recent changes a resolution can point at: the row's versions for a mapping row, the
    step's artifacts' versions for a step."""
    if thread.mapping is not None:
        slugs = ["mapping"]
    else:
        models = STEPS_BY_NUMBER[thread.step].artifacts
        slugs = [slug for slug, model in TRACKED.items() if model in models]
    records = []
    for slug in slugs:
        historical = TRACKED[slug].history.model.objects.filter(project_id=thread.project.pk)
        if thread.mapping is not None:
            historical = historical.filter(id=thread.mapping.pk)
        records += [
            (slug, r)
            for r in historical.select_related("history_user").order_by("-history_date")[:limit]
        ]
    records.sort(key=lambda item: item[1].history_date, reverse=True)
    return [
        ChangeChoice(
            slug,
            r.history_id,
            f"{r.history_date:%d %b %Y %H:%M} · {TRACKED[slug]._meta.verbose_name} "
            f"“{r.instance}” {dict(created='created', changed='changed').get(_action(r))}"
            f" by {r.history_user.get_username() if r.history_user else 'someone'}"[:300],
        )
        for slug, r in records[:limit]
    ]


def _action(record) -> str:
    return {"+": "created", "~": "changed", "-": "deleted"}[record.history_type]


def resolve(thread: Thread, comment: Comment, user, change_key: str = "") -> Comment:
    """Resolve a comment, with or without naming the change (a history version) that did it."""
    if comment.resolved_at is not None:
        raise CommentRefused("change", "This comment is already resolved.")
    comment.change_model, comment.change_history_id, comment.change_summary = "", None, ""
    if change_key:
        chosen = {c.key: c for c in change_choices(thread)}.get(change_key)
        if chosen is None:
            raise CommentRefused("change", "Choose one of the listed changes of this thread.")
        comment.change_model = chosen.slug
        comment.change_history_id = chosen.history_id
        comment.change_summary = chosen.label
    comment.resolved_at = timezone.now()
    comment.resolved_by = user
    comment.save()
    return comment


def reopen(comment: Comment) -> Comment:
    comment.resolved_at = None
    comment.resolved_by = None
    comment.change_model, comment.change_history_id, comment.change_summary = "", None, ""
    comment.save()
    return comment


def change_log(project: IntegrationProject) -> list[Comment]:
    """Comments resolved with a change, for the runbook's change log, oldest first."""
    return list(
        Comment.objects.filter(project=project, change_history_id__isnull=False)
        .select_related("author", "resolved_by", "mapping")
        .order_by("resolved_at", "pk")
    )


def open_comment_count(project: IntegrationProject, number: int) -> int:
    """Unresolved comments in a step's own thread."""
    return Comment.objects.filter(
        project=project, step=number, mapping__isnull=True, resolved_at__isnull=True
    ).count()
