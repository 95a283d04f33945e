"""Password reset and change through Django's views with the app's pages; lockout holds."""

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory

NEW = "another-long-passphrase-77"  # noqa: S105


@pytest.fixture(autouse=True)
def _locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_reset_by_email_then_sign_in_with_the_new_password(db, client):
    user = UserFactory(email="forgot@example.com")
    assert b"Forgot your password?" in client.get(reverse("login")).content
    response = client.post(reverse("password_reset"), {"email": "forgot@example.com"})
    assert response.status_code == 302
    assert mail.outbox[0].subject == "Choose a new Aethon password"
    link = re.search(r"http://testserver(\S+)", mail.outbox[0].body).group(1)
    form_url = client.get(link)["Location"]  # Django moves the token out of the URL
    page = client.get(form_url)
    assert b"Choose a new password" in page.content
    done = client.post(form_url, {"new_password1": NEW, "new_password2": NEW})
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW)
    # used once
    assert b"This link is not valid" in Client().get(link, follow=True).content


def test_reset_page_says_the_same_for_unknown_and_pending_addresses(db, client):
    UserFactory(email="inactive@example.com", is_active=False)
    client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    client.post(reverse("password_reset"), {"email": "inactive@example.com"})
    assert mail.outbox == []


def test_change_needs_the_old_password(db):
    user = UserFactory()
    client = client_for(user)
    url = reverse("password_change")
    assert b"Change your password" in client.get(url).content
    wrong = client.post(url, {"old_password": "nope", "new_password1": NEW, "new_password2": NEW})
    assert b"Your old password was entered incorrectly" in wrong.content
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    client.post(url, {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW})
    user.refresh_from_db()
    assert user.check_password(NEW)
    assert client.get(reverse("planner:project_list")).status_code == 200  # still signed in


def test_change_is_for_signed_in_users_only(db, client):
    response = client.get(reverse("password_change"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_lockout_still_refuses_after_repeated_failures(db, client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory()
    for _ in range(3):
        client.post(reverse("login"), {"username": user.username, "password": "wrong"})
    locked = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert locked.status_code == 429
