"""The staff people page: who has an account, in what state; deactivate and re-invite."""

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from planner.models import Invitation
from tests.conftest import client_for
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

User = get_user_model()


@pytest.fixture(autouse=True)
def _locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


@pytest.fixture
def staff_client(staff):
    return client_for(staff)


def row_of(page, username: str) -> str:
    html = page.content.decode()
    start = html.index(f'data-testid="person-{username}"')
    return html[start : html.index("</tr>", start)]


def test_lists_every_status_with_last_sign_in_and_projects(staff_client, owner_client, project):
    member = MembershipFactory(project=project, role="approver").user
    gone = UserFactory(is_active=False)
    owner_client.post(
        reverse("planner:members", args=[project.pk]), {"who": "new@example.com", "role": "viewer"}
    )
    page = staff_client.get(reverse("accounts:people"))
    assert page.status_code == 200
    assert "active" in row_of(page, member.username)
    assert f'{project.name} <span class="muted">(Approver)' in row_of(page, member.username)
    assert "invited, pending" in row_of(page, "new@example.com")
    assert "deactivated" in row_of(page, gone.username)
    assert "never" in row_of(page, member.username)
    assert "never" not in row_of(page, project.owner.username)  # signed in by client_for


@pytest.mark.parametrize("name", ["people", "person_deactivate", "person_reinvite"])
def test_non_staff_are_refused_and_anonymous_sent_to_sign_in(name, owner_client, client, project):
    target = UserFactory()
    args = [] if name == "people" else [target.pk]
    url = reverse(f"accounts:{name}", args=args)
    for method in ("get", "post"):
        assert getattr(owner_client, method)(url).status_code == 403
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    target.refresh_from_db()
    assert target.is_active and mail.outbox == []


def test_deactivating_is_post_only_and_ends_sign_in(staff_client, staff):
    someone = UserFactory()
    their_client = client_for(someone)
    url = reverse("accounts:person_deactivate", args=[someone.pk])
    assert staff_client.get(url).status_code == 405
    staff_client.post(url)
    someone.refresh_from_db()
    assert not someone.is_active
    # their open session no longer works
    assert their_client.get(reverse("planner:project_list")).status_code == 302


def test_staff_cannot_deactivate_themselves(staff_client, staff):
    response = staff_client.post(
        reverse("accounts:person_deactivate", args=[staff.pk]), follow=True
    )
    assert b"You cannot deactivate your own account." in response.content
    staff.refresh_from_db()
    assert staff.is_active


def test_reinviting_a_deactivated_account_mails_a_link_and_keeps_it_inactive(staff_client, staff):
    someone = UserFactory(is_active=False, email="back@example.com")
    staff_client.post(reverse("accounts:person_reinvite", args=[someone.pk]))
    someone.refresh_from_db()
    assert not someone.is_active and not someone.has_usable_password()
    assert Invitation.objects.get(user=someone).invited_by == staff
    assert mail.outbox[0].to == ["back@example.com"]
    assert "/accounts/invite/" in mail.outbox[0].body


def test_reinviting_an_active_account_is_refused(staff_client):
    someone = UserFactory()
    response = staff_client.post(
        reverse("accounts:person_reinvite", args=[someone.pk]), follow=True
    )
    assert b"is active already" in response.content
    assert mail.outbox == []
    someone.refresh_from_db()
    assert someone.has_usable_password()


def test_withdrawing_an_invitation_leaves_a_deactivated_account(
    staff_client, owner_client, project
):
    owner_client.post(
        reverse("planner:members", args=[project.pk]), {"who": "w@example.com", "role": "viewer"}
    )
    pending = User.objects.get(email="w@example.com")
    staff_client.post(reverse("accounts:person_deactivate", args=[pending.pk]))
    assert not Invitation.objects.filter(user=pending).exists()
    page = staff_client.get(reverse("accounts:people"))
    assert "deactivated" in row_of(page, "w@example.com")
    assert ProjectFactory  # neighbours' factories importable
