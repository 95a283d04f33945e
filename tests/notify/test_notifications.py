"""Notifications: the events that make them, the bell, reading them, leaving a project, and
mail at once or as a digest sent once a day."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from planner.checklist.signoff import record_stale_signoffs, request_signoff
from planner.models import Notification, NotificationPreference, Role, RunStage, ValidationRun
from planner.notify import service as inbox
from planner.runs import alerts
from planner.runs.service import fail_run
from tests.conftest import client_for
from tests.factories import (
    MembershipFactory,
    MonitorFactory,
    ProjectFactory,
    SignOffFactory,
    UserFactory,
    ValidationRunFactory,
)

DAY = date(2026, 11, 29)


def prefer(user, email):
    NotificationPreference.objects.update_or_create(user=user, defaults={"email": email})


def tell(users, project, text="something happened"):
    return inbox.notify(users, project, "mention", text, "/somewhere/")


# --- what makes a notification ----------------------------------------------------------------


def test_a_sign_off_request_reaches_the_roles_that_sign(project, member):
    approver, editor = member(Role.APPROVER), member(Role.EDITOR)
    made = request_signoff(project, 2, editor, "ready for your eyes")
    assert {n.recipient for n in made} == {approver}
    (n,) = made
    assert n.kind == "signoff_request"
    assert "asks you to sign off step 2" in n.text and n.text.endswith("ready for your eyes")
    assert n.url == reverse("planner:step", args=[project.pk, 2]) + "#signoff"


def test_the_step_page_asks_for_sign_off_but_a_viewer_cannot(project, member, editor_client):
    approver = member(Role.APPROVER)
    url = reverse("planner:signoff_ask", args=[project.pk, 3])
    assert client_for(member(Role.VIEWER)).post(url).status_code == 403
    response = editor_client.post(url, {"note": ""}, follow=True)
    assert "Asked 1 member(s) to sign off step 3." in response.content.decode()
    assert Notification.objects.get().recipient == approver
    assert editor_client.post(reverse("planner:signoff_ask", args=[project.pk, 9])).status_code == (
        404
    )


def test_a_stale_sign_off_notifies_the_approvers_in_the_app_without_a_second_mail(
    project, member, tasks_after_commit
):
    approver = member(Role.APPROVER)
    SignOffFactory(project=project, step=1, user=approver, content_hash="0" * 64)
    with tasks_after_commit():
        events = record_stale_signoffs(project)
    assert len(events) == 1
    n = Notification.objects.get()
    assert (n.recipient, n.kind) == (approver, "signoff_stale")
    assert n.emailed_at is not None  # the ask-again mail is the mail
    assert len(mail.outbox) == 1 and "please sign off again" in mail.outbox[0].subject
    with tasks_after_commit():
        assert record_stale_signoffs(project) == []
    assert Notification.objects.count() == 1


def _breaching_run(project, connection=None):
    extra = {"connection": connection} if connection else {}
    run = ValidationRunFactory(project=project, status=ValidationRun.Status.PASSED, **extra)
    RunStage.objects.create(
        run=run,
        name="reconciliation",
        position=0,
        figures={"source_count": 10, "matched_count": 10, "equal_count": 5},
    )
    return run


def test_an_opened_alert_notifies_owners_and_editors_not_viewers(project, member):
    editor, viewer = member(Role.EDITOR), member(Role.VIEWER)
    MonitorFactory(project=project, kind="reconciliation", threshold=Decimal("10"))
    first = _breaching_run(project)
    (alert,) = alerts.evaluate_run(first)["opened"]
    notes = Notification.objects.filter(kind="alert")
    assert {n.recipient for n in notes} == {project.owner, editor}
    assert viewer not in {n.recipient for n in notes}
    assert all(alert.title in n.text for n in notes)
    # no channel: the alert's own mail went to them, so the notification is not mailed again
    assert all(n.emailed_at is not None for n in notes)
    # the same breach seen again opens no new alert and tells nobody again
    assert alerts.evaluate_run(_breaching_run(project, first.connection))["opened"] == []
    assert Notification.objects.filter(kind="alert").count() == 2


def test_an_alert_routed_to_a_channel_rings_the_bell_but_mails_only_the_channel(
    project, member, mailoutbox
):
    from planner.models import AlertChannel

    editor = member(Role.EDITOR)
    AlertChannel.objects.create(
        project=project, kind="email", target="oncall@example.com", name="on-call"
    )
    MonitorFactory(
        project=project, kind="reconciliation", threshold=Decimal("10"), alert_route="on-call"
    )
    (alert,) = alerts.evaluate_run(_breaching_run(project))["opened"]
    notes = Notification.objects.filter(kind="alert")
    assert {n.recipient for n in notes} == {project.owner, editor}
    assert all(n.emailed_at is not None for n in notes)  # the bell only
    assert [m.to for m in mailoutbox if alert.title[:40] in m.subject] == [["oncall@example.com"]]


def test_a_failed_run_notifies_the_projects_editors_and_its_starter(project, member):
    editor, approver, viewer = member(Role.EDITOR), member(Role.APPROVER), member(Role.VIEWER)
    run = ValidationRunFactory(project=project, triggered_by=approver)
    assert fail_run(run.pk, "the source is unreachable")
    notes = Notification.objects.filter(kind="run_failed")
    assert {n.recipient for n in notes} == {project.owner, editor, approver}
    assert viewer not in {n.recipient for n in notes}
    assert "the source is unreachable" in notes[0].text
    assert notes[0].url == reverse("planner:run_show", args=[project.pk, run.pk])
    # a cancelled run is not a failure, and an ended run cannot fail twice
    assert not fail_run(run.pk, "again")
    other = ValidationRunFactory(project=project)
    fail_run(other.pk, "stopped", status=ValidationRun.Status.CANCELLED)
    assert Notification.objects.filter(kind="run_failed").count() == 3


# --- reading them -----------------------------------------------------------------------------


def test_the_bell_counts_unread_in_one_query_and_hides_projects_i_left(project, member):
    editor = member(Role.EDITOR)
    other = ProjectFactory()
    MembershipFactory(project=other, user=editor, role=Role.EDITOR)
    tell([editor], project)
    tell([editor], other)
    tell([editor], None, "an account notice")
    with CaptureQueriesContext(connection) as queries:
        assert inbox.unread_count(editor) == 3
    assert len(queries) == 1
    other.memberships.filter(user=editor).delete()
    assert inbox.unread_count(editor) == 2
    page = client_for(editor).get(reverse("planner:notifications")).content.decode()
    assert other.name not in page and project.name in page
    assert 'aria-label="Notifications, 2 unread"' in page


def test_the_bell_is_in_the_header_of_every_page(project, member):
    editor = member(Role.EDITOR)
    tell([editor], project)
    client = client_for(editor)
    for url in (reverse("planner:project_list"), reverse("planner:step", args=[project.pk, 1])):
        html = client.get(url).content.decode()
        assert 'data-testid="bell"' in html and '<span class="badge bell-count">1</span>' in html
    fragment = client.get(reverse("planner:notifications_bell")).content.decode()
    assert fragment.strip().startswith('<a id="bell"') and "1 unread" in fragment


def test_mark_one_and_mark_all_read_are_posts_of_my_own(project, member):
    editor, other = member(Role.EDITOR), member(Role.EDITOR)
    first, second = tell([editor], project)[0], tell([editor], project)[0]
    theirs = tell([other], project)[0]
    client = client_for(editor)
    url = reverse("planner:notifications_read")
    assert client.get(url).status_code == 405
    client.post(url, {"notification": theirs.pk})
    theirs.refresh_from_db()
    assert theirs.read_at is None  # not mine to mark
    client.post(url, {"notification": first.pk})
    assert inbox.unread_count(editor) == 1
    client.post(url)
    second.refresh_from_db()
    assert second.read_at is not None and inbox.unread_count(editor) == 0
    assert inbox.unread_count(other) == 1


def test_the_api_lists_only_my_visible_notifications(project, member, client):
    from planner.api.tokens import create_token

    editor = member(Role.EDITOR)
    tell([editor], project, "mine")
    tell([member(Role.EDITOR)], project, "not mine")
    token = {"HTTP_AUTHORIZATION": f"Bearer {create_token(editor, 't')[1]}"}
    assert [n["text"] for n in client.get("/api/me/notifications", **token).json()] == ["mine"]


# --- mail -------------------------------------------------------------------------------------


def test_immediate_mail_is_sent_once_after_the_commit(project, member, tasks_after_commit):
    editor = member(Role.EDITOR)
    with tasks_after_commit():
        (n,) = tell([editor], project, "look here")
        assert mail.outbox == []
    assert [m.to for m in mail.outbox] == [[editor.email]]
    assert "look here" in mail.outbox[0].subject and "/somewhere/" in mail.outbox[0].body
    assert inbox.email_notification(n.pk) is False  # a redelivered task sends nothing
    assert len(mail.outbox) == 1


def test_a_failed_send_gives_the_claim_back(project, member, monkeypatch):
    editor = member(Role.EDITOR)
    (n,) = tell([editor], project)

    def down(*args, **kwargs):
        raise OSError("smtp down")

    monkeypatch.setattr(inbox, "send_mail", down)
    with pytest.raises(OSError):
        inbox.email_notification(n.pk)
    n.refresh_from_db()
    assert n.emailed_at is None
    monkeypatch.undo()
    assert inbox.email_notification(n.pk) is True


@pytest.mark.parametrize("choice", ["digest", "off"])
def test_digest_and_off_readers_get_no_mail_per_notification(
    project, member, tasks_after_commit, choice
):
    editor = member(Role.EDITOR)
    prefer(editor, choice)
    with tasks_after_commit():
        tell([editor], project)
    assert mail.outbox == []


def test_the_digest_is_sent_once_a_day_with_what_was_not_mailed(project, member):
    reader, off = member(Role.EDITOR), member(Role.EDITOR)
    prefer(reader, "digest")
    prefer(off, "off")
    tell([reader, off], project, "first news")
    tell([reader], project, "second news")
    assert inbox.send_digests(DAY) == [reader.pk]
    (digest,) = mail.outbox
    assert digest.to == [reader.email] and "2 new" in digest.subject
    assert "first news" in digest.body and "second news" in digest.body
    # the hourly beat runs again the same day: nothing more, even with news
    tell([reader], project, "third news")
    assert inbox.send_digests(DAY) == []
    assert len(mail.outbox) == 1
    # the next day the news not mailed yet goes out, and only that
    assert inbox.send_digests(DAY + timedelta(days=1)) == [reader.pk]
    assert "third news" in mail.outbox[1].body and "first news" not in mail.outbox[1].body


def test_the_digest_leaves_out_projects_i_left(project, member):
    reader = member(Role.EDITOR)
    prefer(reader, "digest")
    other = ProjectFactory(name="Left behind")
    MembershipFactory(project=other, user=reader, role=Role.EDITOR)
    tell([reader], other, "from the old project")
    other.memberships.filter(user=reader).delete()
    assert inbox.send_digests(DAY) == []
    assert mail.outbox == []


def test_an_immediate_mail_lost_with_the_queue_goes_out_with_the_digest_run(project, member):
    editor = member(Role.EDITOR)
    (n,) = tell([editor], project)
    Notification.objects.filter(pk=n.pk).update(created_at=timezone.now() - timedelta(hours=2))
    inbox.send_digests(DAY)
    assert [m.to for m in mail.outbox] == [[editor.email]]
    inbox.send_digests(DAY + timedelta(days=1))
    assert len(mail.outbox) == 1


def test_the_preferences_page_saves_the_choice(db):
    user = UserFactory()
    client = client_for(user)
    url = reverse("planner:notification_settings")
    assert 'value="immediate"' in client.get(url).content.decode()
    assert not NotificationPreference.objects.exists()  # reading wrote nothing
    assert client.post(url, {"email": "digest"}).status_code == 302
    assert NotificationPreference.objects.get(user=user).email == "digest"
    bad = client.post(url, {"email": "hourly"})
    assert bad.status_code == 200 and "Email me: Select a valid choice." in bad.content.decode()


def test_notify_tells_each_member_once_and_not_the_actor(project, member):
    editor = member(Role.EDITOR)
    made = inbox.notify(
        [editor, editor.pk, project.owner], project, "mention", "x", exclude=project.owner
    )
    assert [n.recipient for n in made] == [editor]


def test_no_mail_goes_to_an_account_deactivated_after_it_was_notified(project, member):
    from planner.accounts.invitations import deactivate

    editor = member(Role.EDITOR)
    (n,) = tell([editor], project)
    deactivate(editor)
    assert inbox.email_notification(n.pk) is False
    Notification.objects.filter(pk=n.pk).update(created_at=timezone.now() - timedelta(hours=2))
    inbox.send_digests(DAY)  # nor with the run that mails what the queue lost
    assert mail.outbox == []
