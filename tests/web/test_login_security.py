"""Password guessing is throttled (per user and address, and per user), and connection secrets
never reach an error report."""

import sys
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.core.signals import got_request_exception
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from planner.runs import endpoint_forms
from tests.conftest import client_for
from tests.factories import PASSWORD, SystemFactory, UserFactory

HERE = "10.1.1.1"
ELSEWHERE = "10.2.2.2"
WRONG = "not-the-password"  # noqa: S105
LOCKED = "Too many failed sign-ins. Try again in 15 minutes."


def sign_in(username: str, password: str, address: str = HERE, client: Client | None = None):
    client = client or Client()
    response = client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )
    return client, response


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(username: str, times: int, address: str = HERE) -> None:
    for attempt in range(times):
        _, response = sign_in(username, WRONG, address)
        assert response.status_code in (200, 429), (attempt, response.status_code)


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


def test_the_limit_and_cool_off_are_configured():
    assert settings.AXES_FAILURE_LIMIT == 20
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"], "username"]
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


def test_nineteen_failures_still_let_the_right_password_in(alice):
    fail("alice", 19)
    client, response = sign_in("alice", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_after_twenty_failures_even_the_right_password_is_refused(alice):
    fail("alice", 20)
    client, response = sign_in("alice", PASSWORD)
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert not signed_in(client)


def test_the_lockout_page_is_shown_from_the_twentieth_failure(alice):
    fail("alice", 19)
    _, response = sign_in("alice", WRONG)
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert 'href="/accounts/login/"' in response.content.decode()


def test_another_user_at_the_same_address_is_not_locked(alice):
    UserFactory(username="bob")
    fail("alice", 20)
    client, response = sign_in("bob", PASSWORD, HERE)
    assert response.status_code == 302 and signed_in(client)


def test_another_user_at_another_address_is_not_locked(alice):
    UserFactory(username="bob")
    fail("alice", 20)
    client, response = sign_in("bob", PASSWORD, ELSEWHERE)
    assert response.status_code == 302 and signed_in(client)


def test_the_locked_user_is_locked_from_every_address(alice):
    # Per-username lockout: spreading the guesses over many addresses does not help.
    fail("alice", 20, HERE)
    client, response = sign_in("alice", PASSWORD, ELSEWHERE)
    assert response.status_code == 429 and not signed_in(client)


def test_guesses_spread_over_addresses_add_up_per_user(alice):
    fail("alice", 10, HERE)
    fail("alice", 10, ELSEWHERE)
    client, response = sign_in("alice", PASSWORD, "10.3.3.3")
    assert response.status_code == 429 and not signed_in(client)


def test_the_admin_sign_in_is_locked_too(alice):
    alice.is_staff = True
    alice.save()
    fail("alice", 20)
    client = Client()
    response = client.post(
        reverse("admin:login"), {"username": "alice", "password": PASSWORD}, REMOTE_ADDR=HERE
    )
    assert response.status_code == 429 and not signed_in(client)


def test_the_lock_ends_after_the_cool_off(alice):
    fail("alice", 20)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    client, response = sign_in("alice", PASSWORD)
    assert response.status_code == 302 and signed_in(client)


def test_axes_reset_unlocks(alice):
    fail("alice", 20)
    call_command("axes_reset")
    client, response = sign_in("alice", PASSWORD)
    assert response.status_code == 302 and signed_in(client)


def test_a_successful_sign_in_clears_the_earlier_failures(alice):
    fail("alice", 19)
    sign_in("alice", PASSWORD)
    fail("alice", 19)
    client, response = sign_in("alice", PASSWORD)
    assert response.status_code == 302 and signed_in(client)


def test_another_users_sign_in_does_not_clear_the_failures(alice):
    UserFactory(username="bob")
    fail("alice", 19)
    sign_in("bob", PASSWORD, HERE)
    fail("alice", 1)
    client, response = sign_in("alice", PASSWORD)
    assert response.status_code == 429 and not signed_in(client)


def test_failed_attempts_never_store_the_password(alice):
    fail("alice", 1)
    attempt = AccessAttempt.objects.get()
    assert WRONG not in attempt.post_data


def test_test_clients_still_sign_in_with_a_password(alice):
    # The fixtures' client_for() goes through authenticate(), which the lockout backend checks.
    client = client_for(alice)
    assert signed_in(client)


# Connection settings carry database passwords, bearer tokens and API keys.
SECRET = "pa55-Zq8!-never-in-a-report"


@pytest.mark.parametrize("view", ["planner:system_settings", "planner:system_test"])
def test_connection_secrets_are_masked_in_error_reports(owner_client, project, monkeypatch, view):
    system = SystemFactory(project=project)
    reports = []

    def boom(self):
        raise RuntimeError("the form blew up")

    def capture(sender, request, **kwargs):
        exc = sys.exc_info()
        reports.append((request, ExceptionReporter(request, *exc).get_traceback_text()))

    monkeypatch.setattr(endpoint_forms.EndpointForm, "is_valid", boom)
    got_request_exception.connect(capture)
    owner_client.raise_request_exception = False
    try:
        response = owner_client.post(
            reverse(view, args=[project.pk, system.pk]),
            {"kind": "postgres", "password": SECRET, "token": SECRET, "api_key": SECRET},
        )
    finally:
        got_request_exception.disconnect(capture)
    assert response.status_code == 500
    [(request, text)] = reports
    assert {"password", "token", "api_key"} <= set(request.sensitive_post_parameters)
    post = SafeExceptionReporterFilter().get_post_parameters(request)
    assert post["password"] == post["token"] == post["api_key"] == "********************"
    assert post["kind"] == "postgres"
    assert SECRET not in text


def test_the_lockout_message_follows_the_configured_cool_off(alice, settings):
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    fail("alice", 20)
    _, response = sign_in("alice", PASSWORD)
    assert "Too many failed sign-ins. Try again in 1 minute." in response.content.decode()


def test_an_administrator_unlocks_in_the_admin(alice):
    admin = UserFactory(is_staff=True, is_superuser=True)
    fail("alice", 20)
    attempt = AccessAttempt.objects.get(username="alice")
    staff = client_for(admin)
    response = staff.post(
        reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    client, response = sign_in("alice", PASSWORD)
    assert response.status_code == 302 and signed_in(client)
