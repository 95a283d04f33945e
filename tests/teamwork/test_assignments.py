"""Assignments: who may assign whom, My work's order, overdue counts, reminders once each."""

from datetime import date, timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from planner.models import Assignment, FeedbackItem, Notification, ReminderSent, Role, WorkKind
from planner.notify.service import notify
from planner.teamwork import assignments
from planner.teamwork.assignments import AssignmentRefused, work_item
from tests.conftest import client_for
from tests.factories import MembershipFactory, ProjectFactory, TestCaseFactory, UserFactory

TODAY = date(2026, 11, 29)


def step_item(project, number=1):
    return work_item(project, WorkKind.STEP, number)


# --- the service ------------------------------------------------------------------------------


def test_an_editor_can_be_assigned_and_is_notified(project, member, tasks_after_commit):
    editor = member(Role.EDITOR)
    with tasks_after_commit():
        a = assignments.assign(step_item(project, 3), editor.pk, TODAY, project.owner)
    assert (a.assignee, a.due_date, a.kind, a.step) == (editor, TODAY, "step", 3)
    n = Notification.objects.get(recipient=editor)
    assert n.kind == "assignment"
    assert "assigned you Step 3" in n.text and "29 Nov 2026" in n.text
    assert n.url == reverse("planner:step", args=[project.pk, 3])
    assert [m.to for m in mail.outbox] == [[editor.email]]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.APPROVER])
def test_a_step_cannot_go_to_a_role_that_cannot_edit(project, member, role):
    with pytest.raises(AssignmentRefused) as refused:
        assignments.assign(step_item(project), member(role).pk, None, project.owner)
    assert refused.value.field == "assignee"
    assert "member of this project" in str(refused.value)
    assert not Assignment.objects.exists()


def test_an_approver_can_take_a_backlog_item(project, member):
    item = FeedbackItem.objects.create(project=project, summary="Invoices late on Mondays")
    approver = member(Role.APPROVER)
    a = assignments.assign(
        work_item(project, WorkKind.BACKLOG, item.pk), approver.pk, None, approver
    )
    assert a.backlog_item == item
    # assigning yourself tells nobody
    assert not Notification.objects.exists()


def test_a_non_member_cannot_be_assigned(project):
    outsider = UserFactory()
    with pytest.raises(AssignmentRefused):
        assignments.assign(step_item(project), outsider.pk, None, project.owner)


def test_an_inactive_member_cannot_be_assigned(project, member):
    editor = member(Role.EDITOR)
    editor.is_active = False
    editor.save()
    with pytest.raises(AssignmentRefused):
        assignments.assign(step_item(project), editor.pk, None, project.owner)


def test_another_projects_case_is_not_work_of_this_project(project):
    other_case = TestCaseFactory()
    with pytest.raises(Exception) as missing:
        work_item(project, WorkKind.TEST_CASE, other_case.pk)
    assert missing.type.__name__ == "Http404"
    for kind, ref in [("step", 8), ("rehearsal", 1), ("backlog", 999), ("nonsense", 1)]:
        with pytest.raises(Exception) as missing:
            work_item(project, kind, ref)
        assert missing.type.__name__ == "Http404"


def test_reassigning_updates_the_one_row_and_tells_only_the_new_person(project, member):
    first, second = member(Role.EDITOR), member(Role.EDITOR)
    item = work_item(project, WorkKind.REHEARSAL, 0)
    assignments.assign(item, first.pk, TODAY, project.owner)
    assignments.assign(item, first.pk, TODAY + timedelta(days=2), project.owner)  # date only
    assignments.assign(item, second.pk, TODAY, project.owner)
    assert Assignment.objects.count() == 1
    assert Assignment.objects.get().assignee == second
    assert Notification.objects.filter(recipient=first).count() == 1
    assert Notification.objects.filter(recipient=second).count() == 1


def test_no_assignee_removes_it_and_a_date_alone_is_refused(project, member):
    editor = member(Role.EDITOR)
    case = TestCaseFactory(project=project)
    item = work_item(project, WorkKind.TEST_CASE, case.pk)
    assignments.assign(item, editor.pk, None, project.owner)
    with pytest.raises(AssignmentRefused) as refused:
        assignments.assign(item, None, TODAY, project.owner)
    assert refused.value.field == "assignee"
    assert Assignment.objects.count() == 1
    assert assignments.assign(item, None, None, project.owner) is None
    assert not Assignment.objects.exists()


def test_my_work_lists_overdue_first_then_by_date_then_undated(member, project):
    editor = member(Role.EDITOR)
    other = ProjectFactory(name="Another")
    MembershipFactory(project=other, user=editor, role=Role.EDITOR)
    make = lambda p, n, due: Assignment.objects.create(  # noqa: E731
        project=p, kind="step", step=n, assignee=editor, due_date=due
    )
    undated = make(project, 1, None)
    later = make(other, 2, TODAY + timedelta(days=5))
    overdue_old = make(project, 3, TODAY - timedelta(days=9))
    today = make(other, 4, TODAY)
    overdue = make(other, 5, TODAY - timedelta(days=1))
    done = make(project, 6, TODAY - timedelta(days=30))
    assignments.mark_done(done)
    Assignment.objects.create(  # someone else's work is not mine
        project=project, kind="step", step=7, assignee=project.owner, due_date=TODAY
    )
    work = assignments.open_work(editor, TODAY)
    assert [a.pk for a in work] == [overdue_old.pk, overdue.pk, today.pk, later.pk, undated.pk]
    assert [a.overdue for a in work] == [True, True, False, False, False]


def test_my_work_hides_the_work_of_a_project_i_left(member, project):
    editor = member(Role.EDITOR)
    Assignment.objects.create(project=project, kind="step", step=1, assignee=editor)
    assert len(assignments.open_work(editor, TODAY)) == 1
    project.memberships.filter(user=editor).delete()
    assert assignments.open_work(editor, TODAY) == []


def test_overdue_counts_are_one_query_for_any_number_of_projects(db):
    from planner.models import Membership

    user = UserFactory()
    projects = [ProjectFactory() for _ in range(4)]
    for i, p in enumerate(projects):
        MembershipFactory(project=p, user=user, role=Role.EDITOR)
        for n in range(1, i + 1):
            Assignment.objects.create(
                project=p, kind="step", step=n, assignee=user, due_date=TODAY - timedelta(days=1)
            )
    # due today is not overdue, nor is done work
    Assignment.objects.create(
        project=projects[0], kind="step", step=7, assignee=user, due_date=TODAY
    )
    done = Assignment.objects.create(
        project=projects[0], kind="step", step=6, assignee=user, due_date=TODAY - timedelta(days=3)
    )
    assignments.mark_done(done)
    with CaptureQueriesContext(connection) as queries:
        rows = list(
            Membership.objects.filter(user=user)
            .annotate(n=assignments.overdue_count(TODAY))
            .order_by("project_id")
        )
    assert len(queries) == 1
    assert [r.n for r in rows] == [0, 1, 2, 3]


# --- reminders --------------------------------------------------------------------------------


def test_reminders_go_the_day_before_and_on_the_day_once_each(project, member, tasks_after_commit):
    editor = member(Role.EDITOR)
    a = Assignment.objects.create(
        project=project, kind="step", step=2, assignee=editor, due_date=TODAY + timedelta(days=1)
    )
    Assignment.objects.create(  # not due soon: no reminder
        project=project, kind="step", step=3, assignee=editor, due_date=TODAY + timedelta(days=9)
    )
    with tasks_after_commit():
        sent = assignments.send_reminders(TODAY)
    assert [(r.assignment_id, r.kind) for r in sent] == [(a.pk, "day_before")]
    assert len(mail.outbox) == 1 and "Due tomorrow" in mail.outbox[0].subject
    with tasks_after_commit():
        assert assignments.send_reminders(TODAY) == []  # the hourly beat runs again
    assert len(mail.outbox) == 1
    with tasks_after_commit():
        sent = assignments.send_reminders(TODAY + timedelta(days=1))
    assert [r.kind for r in sent] == ["due_today"]
    assert "Due today" in mail.outbox[1].subject
    with tasks_after_commit():
        assert assignments.send_reminders(TODAY + timedelta(days=1)) == []
    assert len(mail.outbox) == 2
    # a moved due date earns its own reminders
    Assignment.objects.filter(pk=a.pk).update(due_date=TODAY + timedelta(days=3))
    assert [r.kind for r in assignments.send_reminders(TODAY + timedelta(days=2))] == ["day_before"]


def test_a_reminder_already_marked_by_another_worker_is_not_sent(project, member):
    editor = member(Role.EDITOR)
    a = Assignment.objects.create(
        project=project, kind="step", step=2, assignee=editor, due_date=TODAY
    )
    ReminderSent.objects.create(assignment=a, kind="due_today", due_date=TODAY)
    assert assignments.send_reminders(TODAY) == []
    assert not Notification.objects.exists()


def test_done_work_gets_no_reminder(project, member):
    editor = member(Role.EDITOR)
    a = Assignment.objects.create(
        project=project, kind="step", step=2, assignee=editor, due_date=TODAY
    )
    assignments.mark_done(a)
    assert assignments.send_reminders(TODAY) == []


def test_the_reminder_task_is_registered_and_runs(project, member):
    from aethon.celery import app

    editor = member(Role.EDITOR)
    Assignment.objects.create(
        project=project, kind="step", step=2, assignee=editor, due_date=timezone.localdate()
    )
    assert app.tasks[assignments.REMINDER_TASK].apply().get() == 1


# --- the pages and the API --------------------------------------------------------------------


def test_the_owner_assigns_a_step_on_the_page(project, member, owner_client):
    editor = member(Role.EDITOR)
    url = reverse("planner:assign", args=[project.pk, "step", 2])
    assert editor.username in owner_client.get(url).content.decode()
    response = owner_client.post(url, {"assignee": editor.pk, "due_date": "2026-12-01"})
    assert response.status_code == 302
    assert response["Location"] == reverse("planner:step", args=[project.pk, 2])
    a = Assignment.objects.get()
    assert (a.assignee, a.due_date) == (editor, date(2026, 12, 1))
    page = owner_client.get(response["Location"]).content.decode()
    assert f"Assigned to <strong>{editor.username}</strong>" in page


def test_the_page_names_the_field_when_the_assignee_cannot_do_the_work(
    project, member, owner_client
):
    viewer = member(Role.VIEWER)
    url = reverse("planner:assign", args=[project.pk, "step", 2])
    response = owner_client.post(url, {"assignee": viewer.pk, "due_date": "not a date"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Assignee: The assignee must be a member of this project" in body
    assert "Due date: Enter a valid date." in body
    assert not Assignment.objects.exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.APPROVER])
def test_who_cannot_edit_cannot_assign_on_the_web(project, member, role):
    client = client_for(member(role))
    editor = member(Role.EDITOR)
    url = reverse("planner:assign", args=[project.pk, "step", 2])
    assert client.get(url).status_code == 403
    assert client.post(url, {"assignee": editor.pk}).status_code == 403
    assert not Assignment.objects.exists()


def test_an_outsider_gets_404_on_the_assign_page(project, outsider_client):
    url = reverse("planner:assign", args=[project.pk, "step", 2])
    assert outsider_client.get(url).status_code == 404


def test_the_assignee_marks_their_work_done_but_a_viewer_cannot(project, member):
    editor, viewer = member(Role.EDITOR), member(Role.VIEWER)
    a = Assignment.objects.create(project=project, kind="step", step=1, assignee=editor)
    url = reverse("planner:assignment_done", args=[project.pk, a.pk])
    assert client_for(viewer).post(url).status_code == 403
    approver = member(Role.APPROVER)
    assert client_for(approver).post(url).status_code == 403  # not theirs, not an editor
    a.refresh_from_db()
    assert a.done_at is None
    assert client_for(editor).post(url).status_code == 302
    a.refresh_from_db()
    assert a.done_at is not None
    assert assignments.open_work(editor) == []


def test_my_work_page_lists_only_my_open_work(project, member):
    editor = member(Role.EDITOR)
    Assignment.objects.create(
        project=project, kind="step", step=4, assignee=editor, due_date=TODAY - timedelta(days=1)
    )
    Assignment.objects.create(project=project, kind="step", step=5, assignee=project.owner)
    body = client_for(editor).get(reverse("planner:my_work")).content.decode()
    assert "Step 4" in body and "overdue" in body
    assert "Step 5" not in body


def test_the_dashboard_shows_overdue_counts(project, member, owner_client):
    editor = member(Role.EDITOR)
    Assignment.objects.create(
        project=project, kind="step", step=4, assignee=editor, due_date=TODAY - timedelta(days=1)
    )
    body = owner_client.get(reverse("planner:project_list")).content.decode()
    assert f'data-testid="overdue-{project.pk}"><span class="badge warn">1</span>' in body


def _api(user):
    from planner.api.tokens import create_token

    return {"HTTP_AUTHORIZATION": f"Bearer {create_token(user, 't')[1]}"}


def test_the_api_assigns_for_editors_and_refuses_viewers(project, member, client):
    editor, viewer = member(Role.EDITOR), member(Role.VIEWER)
    url = f"/api/projects/{project.pk}/assignments"
    body = {"kind": "step", "ref": 2, "assignee_id": editor.pk, "due_date": "2026-12-01"}
    refused = client.put(url, body, content_type="application/json", **_api(viewer))
    assert refused.status_code == 403
    assert not Assignment.objects.exists()
    made = client.put(url, body, content_type="application/json", **_api(editor))
    assert made.status_code == 200, made.content
    assert made.json()["assignee"] == editor.username
    bad = client.put(
        url, {**body, "assignee_id": viewer.pk}, content_type="application/json", **_api(editor)
    )
    assert bad.status_code == 400 and bad.json()["detail"].startswith("assignee:")
    missing = client.put(
        url,
        {**body, "kind": "test_case", "ref": 999999},
        content_type="application/json",
        **_api(editor),
    )
    assert missing.status_code == 404
    outsider = client.put(url, body, content_type="application/json", **_api(UserFactory()))
    assert outsider.status_code == 404
    mine = client.get("/api/me/work", **_api(editor)).json()
    assert [w["title"] for w in mine] == ["Step 2: " + mine[0]["title"].split(": ", 1)[1]]
    assert mine[0]["due_date"] == "2026-12-01"


def test_notify_skips_non_members(project):
    outsider = UserFactory()
    assert notify([outsider], project, "mention", "hello") == []


def test_an_improvement_of_the_backlog_is_assigned_and_listed_on_step_7(
    project, member, owner_client
):
    from planner.models import Improvement

    improvement = Improvement.objects.create(project=project, title="Batch the status pushes")
    other = Improvement.objects.create(project=ProjectFactory(), title="Not ours")
    approver = member(Role.APPROVER)
    url = reverse("planner:assign", args=[project.pk, "improvement", improvement.pk])
    response = owner_client.post(url, {"assignee": approver.pk, "due_date": "2026-12-24"})
    assert response.status_code == 302
    assert response["Location"] == reverse("planner:step", args=[project.pk, 7])
    a = Assignment.objects.get()
    assert (a.kind, a.improvement, a.assignee) == ("improvement", improvement, approver)
    assert [w.title for w in assignments.open_work(approver, TODAY)] == [
        "Improvement: Batch the status pushes"
    ]
    panel = assignments.step_panel(project, 7)
    assert [(r.kind, r.ref, r.assignment) for r in panel["rows"]] == [
        ("improvement", improvement.pk, a)
    ]
    foreign = reverse("planner:assign", args=[project.pk, "improvement", other.pk])
    assert owner_client.get(foreign).status_code == 404
    page = owner_client.get(reverse("planner:step", args=[project.pk, 7])).content.decode()
    assert url in page


def test_an_archived_projects_work_leaves_my_work_and_gets_no_reminder(project, member):
    from planner.web.lifecycle import archive, restore

    editor = member(Role.EDITOR)
    Assignment.objects.create(project=project, kind="step", step=2, assignee=editor, due_date=TODAY)
    archive(project)
    assert assignments.open_work(editor, TODAY) == []
    assert assignments.send_reminders(TODAY) == []
    assert not Notification.objects.exists()
    restore(project)
    assert len(assignments.open_work(editor, TODAY)) == 1
    assert [r.kind for r in assignments.send_reminders(TODAY)] == ["due_today"]
