"""Inviting by email: a pending account, a one-time set-password link that expires."""

import re
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from planner.accounts import invitations
from planner.models import Invitation, Membership, Role
from tests.conftest import HTMX, client_for
from tests.factories import PASSWORD, MembershipFactory, ProjectFactory, UserFactory

User = get_user_model()
NEW_PASSWORD = "a-long-unusual-passphrase-42"  # noqa: S105


@pytest.fixture(autouse=True)
def _locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.AETHON_BASE_URL = "http://testserver"


def invite(client, project, who, role=Role.EDITOR, **extra):
    return client.post(
        reverse("planner:members", args=[project.pk]), {"who": who, "role": role}, **extra
    )


def link_in(message) -> str:
    return re.search(r"http://testserver(/accounts/invite/\S+/)", message.body).group(1)


@pytest.mark.parametrize("extra", [{}, HTMX])
def test_inviting_a_new_address_makes_a_pending_member_and_mails_a_link(
    owner_client, project, extra
):
    response = invite(owner_client, project, "  Newcomer@Example.com ", **extra)
    assert response.status_code in (200, 302)
    user = User.objects.get(email="newcomer@example.com")
    assert not user.is_active and not user.has_usable_password()
    assert Membership.objects.get(project=project, user=user).role == Role.EDITOR
    invitation = Invitation.objects.get(user=user)
    assert invitation.project == project and invitation.invited_by == project.owner
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["newcomer@example.com"]
    assert project.name in message.subject
    assert "expires in 7 days" in message.body
    assert link_in(message)


def test_the_members_page_marks_the_pending_member(owner_client, project):
    invite(owner_client, project, "pending@example.com")
    page = owner_client.get(reverse("planner:members", args=[project.pk]))
    assert b"invitation pending" in page.content


def test_an_existing_account_is_added_without_an_invitation(owner_client, project):
    someone = UserFactory(email="known@example.com")
    invite(owner_client, project, "KNOWN@example.com")
    assert Membership.objects.filter(project=project, user=someone).exists()
    assert mail.outbox == []
    someone.refresh_from_db()
    assert someone.is_active and someone.check_password(PASSWORD)


def test_a_pending_account_invited_to_a_second_project_gets_a_fresh_link(owner_client, project):
    invite(owner_client, project, "twice@example.com")
    first = link_in(mail.outbox[0])
    other = ProjectFactory()
    invite(client_for(other.owner), other, "twice@example.com")
    assert len(mail.outbox) == 2
    assert Invitation.objects.get(user__email="twice@example.com").project == other
    assert Client_get(first).status_code == 404  # the older link is void


def Client_get(path):
    from django.test import Client

    return Client().get(path)


@pytest.mark.parametrize(
    "who, message",
    [
        (
            "nobody",
            "No account has the username &#x27;nobody&#x27;. Invite by email address instead.",
        ),
        ("bad@", "&#x27;bad@&#x27; is not a valid email address."),
    ],
)
def test_unknown_usernames_and_bad_addresses_are_refused_by_name(
    owner_client, project, who, message
):
    response = invite(owner_client, project, who)
    assert response.status_code == 200
    assert message.encode() in response.content
    assert User.objects.count() == 1 and mail.outbox == []


def test_only_owners_invite(editor_client, viewer_client, outsider_client, project, client):
    for c, status in ((editor_client, 403), (viewer_client, 403), (outsider_client, 404)):
        assert invite(c, project, "sneaky@example.com").status_code == status
    assert invite(client, project, "sneaky@example.com").status_code == 302  # to sign in
    assert not User.objects.filter(email="sneaky@example.com").exists()
    assert mail.outbox == []


def test_accepting_sets_the_password_signs_in_and_lands_on_the_project(
    owner_client, project, client
):
    invite(owner_client, project, "new@example.com")
    url = link_in(mail.outbox[0])
    page = client.get(url)
    assert page.status_code == 200 and b"new@example.com" in page.content
    response = client.post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("planner:overview", args=[project.pk])
    user = User.objects.get(email="new@example.com")
    assert user.is_active and user.check_password(NEW_PASSWORD)
    assert not Invitation.objects.filter(user=user).exists()
    assert client.get(response["Location"]).status_code == 200  # signed in
    # the link worked once
    assert Client_get(url).status_code == 404


def test_a_weak_password_is_refused_and_nothing_changes(owner_client, project, client):
    invite(owner_client, project, "weak@example.com")
    url = link_in(mail.outbox[0])
    response = client.post(url, {"new_password1": "password", "new_password2": "password"})
    assert response.status_code == 200
    assert b"This password is too common" in response.content
    user = User.objects.get(email="weak@example.com")
    assert not user.is_active and not user.has_usable_password()
    assert client.get(reverse("planner:project_list")).status_code == 302  # not signed in


def test_get_of_the_link_writes_nothing(owner_client, project, client, django_assert_num_queries):
    invite(owner_client, project, "look@example.com")
    url = link_in(mail.outbox[0])
    user = User.objects.get(email="look@example.com")
    client.get(url)
    client.get(url)
    refreshed = User.objects.get(pk=user.pk)
    assert refreshed.password == user.password and refreshed.last_login is None


def test_an_expired_link_says_so_and_offers_a_new_one(owner_client, project, client, settings):
    invite(owner_client, project, "late@example.com")
    url = link_in(mail.outbox[0])
    later = invitations.invite_tokens._now() + timedelta(days=7, minutes=1)
    with mock.patch.object(invitations.InviteTokenGenerator, "_now", return_value=later):
        page = client.get(url)
        refused = client.post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert page.status_code == 410
    assert b"This invitation has expired" in page.content
    assert refused.status_code == 410
    assert not User.objects.get(email="late@example.com").is_active
    renewed = client.post(reverse("accounts:invite_renew"), {"email": "LATE@example.com"})
    assert b"a new link is on its way" in renewed.content
    assert len(mail.outbox) == 2
    fresh = link_in(mail.outbox[1])
    assert client.get(fresh).status_code == 200
    assert client.get(url).status_code == 404  # the old one is void now


def test_the_expiry_follows_the_setting(owner_client, project, client, settings):
    settings.AETHON_INVITE_DAYS = 2
    invite(owner_client, project, "soon@example.com")
    url = link_in(mail.outbox[0])
    assert "expires in 2 days" in mail.outbox[0].body
    later = invitations.invite_tokens._now() + timedelta(days=2, minutes=1)
    with mock.patch.object(invitations.InviteTokenGenerator, "_now", return_value=later):
        assert client.get(url).status_code == 410
    almost = invitations.invite_tokens._now() + timedelta(days=1, hours=23)
    with mock.patch.object(invitations.InviteTokenGenerator, "_now", return_value=almost):
        assert client.get(url).status_code == 200


def test_asking_for_a_new_link_reveals_nothing_about_other_addresses(client, project):
    active = UserFactory(email="active@example.com")
    same = []
    for email in ("active@example.com", "nobody@example.com"):
        response = client.post(reverse("accounts:invite_renew"), {"email": email})
        main = response.content.split(b"<main", 1)[1].split(b"</main>")[0]
        same.append(main.replace(email.encode(), b""))
    assert same[0] == same[1]
    assert mail.outbox == []
    active.refresh_from_db()
    assert active.is_active and active.has_usable_password()


def test_a_reset_token_is_no_invitation(owner_client, project, client):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    invite(owner_client, project, "salt@example.com")
    user = User.objects.get(email="salt@example.com")
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    forged = reverse("accounts:invite_accept", args=[uid, default_token_generator.make_token(user)])
    assert client.get(forged).status_code == 404


def test_an_active_account_cannot_be_taken_over_by_a_link(client, db):
    active = UserFactory()
    token = invitations.invite_tokens.make_token(active)
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    url = reverse(
        "accounts:invite_accept", args=[urlsafe_base64_encode(force_bytes(active.pk)), token]
    )
    response = client.post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 404
    active.refresh_from_db()
    assert active.check_password(PASSWORD)


@pytest.mark.parametrize("uid", ["garbage", "MTIzNDU2Nzg5", ""])
def test_mangled_links_are_not_found(client, uid, db):
    url = f"/accounts/invite/{uid or 'x'}/1-abc/"
    assert client.get(url).status_code == 404


def test_a_member_who_was_invited_keeps_their_role_after_accepting(owner_client, project, client):
    invite(owner_client, project, "role@example.com", role=Role.APPROVER)
    url = link_in(mail.outbox[0])
    client.post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert Membership.objects.get(user__email="role@example.com").role == Role.APPROVER
    assert MembershipFactory  # factories stay importable for neighbours


def test_a_link_sent_before_the_account_was_deactivated_no_longer_works(
    owner_client, project, client
):
    invite(owner_client, project, "wrong-person@example.com")
    url = link_in(mail.outbox[0])
    user = User.objects.get(email="wrong-person@example.com")
    invitations.deactivate(user)
    assert client.get(url).status_code == 404
    response = client.post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 404
    user.refresh_from_db()
    assert not user.is_active and not user.has_usable_password()
