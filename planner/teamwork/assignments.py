"""Who does which piece of work, by when; "My work"; overdue counts; due-date reminders."""

from dataclasses import dataclass
from datetime import date, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Case, Count, IntegerField, OuterRef, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from planner.checklist.registry import STEPS_BY_NUMBER
from planner.models import (
    Assignment,
    FeedbackItem,
    Improvement,
    IntegrationProject,
    Membership,
    NotificationKind,
    ReminderSent,
    Role,
    TestCase,
    WorkKind,
)
from planner.notify.service import notify

# Who can do each kind of work: the roles whose capability covers it (steps, cases and the
# rehearsal are edits; after go-live, improvements and incidents are the reviewers' work too).
WORK_ROLES: dict[str, frozenset[str]] = {
    WorkKind.STEP: frozenset({Role.OWNER, Role.EDITOR}),
    WorkKind.TEST_CASE: frozenset({Role.OWNER, Role.EDITOR}),
    WorkKind.REHEARSAL: frozenset({Role.OWNER, Role.EDITOR}),
    WorkKind.IMPROVEMENT: frozenset({Role.OWNER, Role.EDITOR, Role.APPROVER}),
    WorkKind.BACKLOG: frozenset({Role.OWNER, Role.EDITOR, Role.APPROVER}),
}


class AssignmentRefused(ValueError):
    """Why an assignment was not saved; `field` names the form field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class WorkItem:
    """A piece of work that can be assigned, named by kind and reference (the step number, the
    test case's or backlog item's id; 0 for the project's rollback rehearsal)."""

    project: IntegrationProject
    kind: str
    ref: int
    title: str

    @property
    def lookup(self) -> dict:
        if self.kind == WorkKind.STEP:
            return {"kind": WorkKind.STEP, "step": self.ref}
        if self.kind == WorkKind.TEST_CASE:
            return {"test_case_id": self.ref}
        if self.kind == WorkKind.BACKLOG:
            return {"backlog_item_id": self.ref}
        if self.kind == WorkKind.IMPROVEMENT:
            return {"improvement_id": self.ref}
        return {"kind": WorkKind.REHEARSAL}

    @property
    def url(self) -> str:
        return page_url(self.project.pk, self.kind, self.ref)


# Placeholders reversed once: reverse() per row dominated My work's time for hundreds of items.
_PROJECT, _STEP = 987654321, 876543219


def _templates() -> tuple[str, str]:
    step = reverse("planner:step", args=[_PROJECT, _STEP])
    reviews = reverse("planner:reviews", args=[_PROJECT])
    return step, reviews


def page_url(project_id: int, kind: str, ref: int, templates=None) -> str:
    """Where the work itself is done."""
    step, reviews = templates or _templates()
    if kind == WorkKind.BACKLOG:
        return reviews.replace(str(_PROJECT), str(project_id))
    number = {
        WorkKind.STEP: ref,
        WorkKind.TEST_CASE: 4,
        WorkKind.REHEARSAL: 5,
        WorkKind.IMPROVEMENT: 7,
    }[kind]
    return step.replace(str(_PROJECT), str(project_id)).replace(str(_STEP), str(number))


def work_item(project: IntegrationProject, kind: str, ref: int) -> WorkItem:
    """The work named by `kind` and `ref` in this project; Http404 if there is none."""
    if kind == WorkKind.STEP and ref in STEPS_BY_NUMBER:
        return WorkItem(project, kind, ref, f"Step {ref}: {STEPS_BY_NUMBER[ref].title}")
    if kind == WorkKind.TEST_CASE:
        case = TestCase.objects.filter(project=project, pk=ref).first()
        if case:
            return WorkItem(project, kind, ref, f"Test case: {case.description}")
    if kind == WorkKind.REHEARSAL and ref == 0:
        return WorkItem(project, kind, 0, "Rollback rehearsal")
    if kind == WorkKind.BACKLOG:
        item = FeedbackItem.objects.filter(project=project, pk=ref).first()
        if item:
            return WorkItem(project, kind, ref, f"{item.get_kind_display()}: {item.summary}")
    if kind == WorkKind.IMPROVEMENT:
        improvement = Improvement.objects.filter(project=project, pk=ref).first()
        if improvement:
            return WorkItem(project, kind, ref, f"Improvement: {improvement.title}")
    raise Http404("No such piece of work in this project.")


def current(item: WorkItem) -> Assignment | None:
    return (
        Assignment.objects.filter(project=item.project, **item.lookup)
        .select_related("assignee")
        .first()
    )


def assignable_members(project: IntegrationProject, kind: str) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(project=project, role__in=WORK_ROLES[kind], user__is_active=True)
        .select_related("user")
        .order_by("user__username")
    )


def assign(item: WorkItem, assignee_id: int | None, due_date: date | None, by) -> Assignment | None:
    """Give `item` to a member who can do it, by `due_date`; no assignee removes the assignment.

    The new assignee is notified (not when they assigned themselves)."""
    if assignee_id is None:
        if due_date is not None:
            raise AssignmentRefused("assignee", "Choose who does this before giving a due date.")
        Assignment.objects.filter(project=item.project, **item.lookup).delete()
        return None
    member = assignable_members(item.project, item.kind).filter(user_id=assignee_id).first()
    if member is None:
        raise AssignmentRefused(
            "assignee",
            "The assignee must be a member of this project whose role can do this work ("
            + ", ".join(sorted(str(Role(r).label) for r in WORK_ROLES[item.kind]))
            + ").",
        )
    with transaction.atomic():
        existing = (
            Assignment.objects.select_for_update()
            .filter(project=item.project, **item.lookup)
            .first()
        )
        changed_person = existing is None or existing.assignee_id != assignee_id
        assignment = existing or Assignment(project=item.project, **_fields(item))
        assignment.assignee_id = assignee_id
        assignment.due_date = due_date
        assignment.assigned_by = by
        if changed_person:
            assignment.done_at = None
        assignment.save()
        if changed_person:
            due = f", due {due_date:%d %b %Y}" if due_date else ""
            notify(
                [assignee_id],
                item.project,
                NotificationKind.ASSIGNMENT,
                f"{by.get_username()} assigned you {item.title}{due}",
                item.url,
                exclude=by,
            )
    return assignment


def _fields(item: WorkItem) -> dict:
    fields = {"kind": item.kind}
    if item.kind == WorkKind.STEP:
        fields["step"] = item.ref
    elif item.kind == WorkKind.TEST_CASE:
        fields["test_case_id"] = item.ref
    elif item.kind == WorkKind.BACKLOG:
        fields["backlog_item_id"] = item.ref
    elif item.kind == WorkKind.IMPROVEMENT:
        fields["improvement_id"] = item.ref
    return fields


def mark_done(assignment: Assignment, done: bool = True) -> None:
    assignment.done_at = timezone.now() if done else None
    assignment.save(update_fields=["done_at", "updated_at"])


def ref_of(a: Assignment) -> int:
    if a.kind == WorkKind.STEP:
        return a.step
    if a.kind == WorkKind.TEST_CASE:
        return a.test_case_id
    if a.kind == WorkKind.BACKLOG:
        return a.backlog_item_id
    if a.kind == WorkKind.IMPROVEMENT:
        return a.improvement_id
    return 0


def title_of(a: Assignment) -> str:
    if a.kind == WorkKind.STEP:
        return f"Step {a.step}: {STEPS_BY_NUMBER[a.step].title}"
    if a.kind == WorkKind.TEST_CASE:
        return f"Test case: {a.test_case.description}"
    if a.kind == WorkKind.BACKLOG:
        return f"{a.backlog_item.get_kind_display()}: {a.backlog_item.summary}"
    if a.kind == WorkKind.IMPROVEMENT:
        return f"Improvement: {a.improvement.title}"
    return "Rollback rehearsal"


def open_work(user, today: date | None = None) -> list[Assignment]:
    """What is assigned to `user` and not done, in the projects they still belong to and that
    are not archived: overdue first, then by due date (undated last). Each carries `overdue`,
    `title` and `url`."""
    today = today or timezone.localdate()
    rows = list(
        Assignment.objects.filter(
            assignee_id=user.pk,
            done_at__isnull=True,
            project__memberships__user_id=user.pk,
            # An archived project is read-only: its work cannot be done until it is restored.
            project__archived_at__isnull=True,
        )
        .select_related("project", "test_case", "backlog_item", "improvement")
        .annotate(
            is_overdue=Case(
                When(due_date__lt=today, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
            undated=Case(
                When(due_date__isnull=True, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            ),
        )
        .order_by("is_overdue", "undated", "due_date", "project__name", "pk")
    )
    templates = _templates()
    for a in rows:
        a.overdue = a.is_overdue == 0
        a.title = title_of(a)
        a.url = page_url(a.project_id, a.kind, ref_of(a), templates)
    return rows


def overdue_count(today: date) -> Subquery:
    """A subquery for annotating a queryset that has `project_id`: the project's open work past
    its due date (the dashboard annotates its memberships with it: no query per project)."""
    counts = (
        Assignment.objects.filter(
            project_id=OuterRef("project_id"), done_at__isnull=True, due_date__lt=today
        )
        .order_by()
        .values("project_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


# ---------------------------------------------------------------------------------------------
# Reminders: the beat calls this every hour; each reminder is claimed by its marker row.

REMINDER_TASK = "planner.teamwork_tasks.send_reminders"


def send_reminders(today: date | None = None) -> list[ReminderSent]:
    """Remind assignees the day before and on the due date, once each."""
    today = today or timezone.localdate()
    due = Assignment.objects.filter(
        done_at__isnull=True,
        due_date__in=[today, today + timedelta(days=1)],
        project__archived_at__isnull=True,  # read-only until restored: nothing to do there
    ).select_related("project", "test_case", "backlog_item", "improvement")
    done = set(
        ReminderSent.objects.filter(assignment__in=due).values_list(
            "assignment_id", "kind", "due_date"
        )
    )
    sent = []
    for a in due:
        kind = ReminderSent.Kind.DUE_TODAY if a.due_date == today else ReminderSent.Kind.DAY_BEFORE
        if (a.pk, kind, a.due_date) in done:
            continue
        try:
            with transaction.atomic():
                marker = ReminderSent.objects.create(assignment=a, kind=kind, due_date=a.due_date)
                when = "today" if kind == ReminderSent.Kind.DUE_TODAY else "tomorrow"
                notify(
                    [a.assignee_id],
                    a.project,
                    NotificationKind.REMINDER,
                    f"Due {when}: {title_of(a)}",
                    page_url(a.project_id, a.kind, ref_of(a)),
                    urgent=True,
                )
        except IntegrityError:
            continue  # another worker (or an earlier try) sent this one
        sent.append(marker)
    return sent


@dataclass
class PanelRow:
    kind: str
    ref: int
    title: str
    assignment: Assignment | None


def step_panel(project: IntegrationProject, number: int) -> dict:
    """The step page's "who does what" card: the step's own assignment and, on steps 4, 5 and
    7, the test cases, the rollback rehearsal, the improvements and the incidents and feedback.
    At most three queries."""
    assigned = {
        (a.kind, ref_of(a)): a
        for a in Assignment.objects.filter(project=project).select_related("assignee")
    }
    rows: list[PanelRow] = []
    if number == 4:
        for case in TestCase.objects.filter(project=project).only("pk", "description"):
            rows.append(
                PanelRow(
                    WorkKind.TEST_CASE,
                    case.pk,
                    f"Test case: {case.description}",
                    assigned.get((WorkKind.TEST_CASE, case.pk)),
                )
            )
    elif number == 5:
        rows.append(
            PanelRow(
                WorkKind.REHEARSAL, 0, "Rollback rehearsal", assigned.get((WorkKind.REHEARSAL, 0))
            )
        )
    elif number == 7:
        for improvement in Improvement.objects.filter(project=project).only("pk", "title"):
            rows.append(
                PanelRow(
                    WorkKind.IMPROVEMENT,
                    improvement.pk,
                    f"Improvement: {improvement.title}",
                    assigned.get((WorkKind.IMPROVEMENT, improvement.pk)),
                )
            )
        for item in FeedbackItem.objects.filter(project=project).only("pk", "kind", "summary"):
            rows.append(
                PanelRow(
                    WorkKind.BACKLOG,
                    item.pk,
                    f"{item.get_kind_display()}: {item.summary}",
                    assigned.get((WorkKind.BACKLOG, item.pk)),
                )
            )
    return {"step": assigned.get((WorkKind.STEP, number)), "rows": rows}
