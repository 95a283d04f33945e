"""Invite -> set password, and template -> new project, at desktop and phone width, with axe."""

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core import mail
from playwright.sync_api import Page, expect

from planner.models import IntegrationProject, Membership, Role
from tests.browser.conftest import sign_in
from tests.factories import ConnectionFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
NEW_PASSWORD = "a-long-unusual-passphrase-42"  # noqa: S105


def assert_accessible(page: Page, part: str = "main") -> None:
    # The content these flows own; the shared top bar, navigator and the project overview
    # are other pages' concern.
    results = Axe().run(page, context=part)
    assert results.violations_count == 0, results.generate_report()


@pytest.fixture(autouse=True)
def _mail(settings, live_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.AETHON_BASE_URL = live_server.url


@pytest.mark.parametrize("width", WIDTHS)
def test_invite_then_set_password_lands_on_the_project(page: Page, browser, live_server, width):
    page.set_viewport_size(WIDTHS[width])
    project = ProjectFactory(name="Billing sync")
    sign_in(page, live_server.url, project.owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/members/")
    page.get_by_label("Username or email").fill("newcomer@example.com")
    page.locator("#id_role").select_option(Role.EDITOR)
    page.get_by_role("button", name="Invite").click()
    expect(page.get_by_text("Invited newcomer@example.com as editor")).to_be_visible()
    expect(page.locator("#members")).to_contain_text("invitation pending")
    assert_accessible(page)

    (message,) = mail.outbox
    link = re.search(r"(http://\S+/accounts/invite/\S+/)", message.body).group(1)

    # The invitee, in a browser of their own.
    context = browser.new_context(viewport=WIDTHS[width])
    invitee = context.new_page()
    invitee.goto(link)
    expect(invitee.get_by_role("heading", name="Set your password")).to_be_visible()
    expect(invitee.get_by_test_id("invited-username")).to_have_text("newcomer@example.com")
    assert_accessible(invitee)
    invitee.locator("#id_new_password1").fill("short")
    invitee.locator("#id_new_password2").fill("short")
    invitee.get_by_role("button", name="Set password and sign in").click()
    expect(invitee.get_by_text("This password is too short")).to_be_visible()
    invitee.locator("#id_new_password1").fill(NEW_PASSWORD)
    invitee.locator("#id_new_password2").fill(NEW_PASSWORD)
    invitee.get_by_role("button", name="Set password and sign in").click()
    expect(invitee).to_have_url(f"{live_server.url}/projects/{project.pk}/")
    expect(invitee.get_by_text("Your password is set and you are signed in")).to_be_visible()
    assert_accessible(invitee, "[role=status]")
    membership = Membership.objects.get(project=project, user__email="newcomer@example.com")
    assert membership.role == Role.EDITOR and membership.user.is_active

    # The link worked once.
    invitee.goto(link)
    expect(invitee.get_by_test_id("invite-invalid")).to_be_visible()
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_start_a_project_from_a_template(page: Page, live_server, width):
    page.set_viewport_size(WIDTHS[width])
    mine = ConnectionFactory().project
    ProjectFactory(name="Not mine")
    sign_in(page, live_server.url, mine.owner)
    page.get_by_role("link", name="From a template").click()
    expect(page.get_by_role("heading", name="Start a project from a template")).to_be_visible()
    expect(page.get_by_test_id("templates-project")).to_contain_text(mine.name)
    expect(page.locator("main")).not_to_contain_text("Not mine")
    assert_accessible(page)
    page.get_by_label(re.compile("CRM → billing")).check()
    page.get_by_label("Name of the new project").fill("Acme CRM to billing")
    page.get_by_role("button", name="Create the project").click()
    created = IntegrationProject.objects.get(name="Acme CRM to billing")
    expect(page).to_have_url(f"{live_server.url}/projects/{created.pk}/")
    expect(page.get_by_text("Created 'Acme CRM to billing' from the template")).to_be_visible()
    assert_accessible(page, "[role=status]")
    page.goto(f"{live_server.url}/projects/{created.pk}/systems/")
    expect(page.locator("main")).to_contain_text("CRM")
    expect(page.locator("main")).to_contain_text("Billing")
    assert list(created.memberships.values_list("user", "role")) == [(mine.owner.pk, "owner")]


def test_an_archived_project_says_why_an_inline_change_is_refused(page: Page, live_server):
    from django.utils import timezone

    from tests.factories import MembershipFactory

    project = ProjectFactory(name="Old sync")
    MembershipFactory(project=project, role=Role.VIEWER)
    IntegrationProject.objects.filter(pk=project.pk).update(archived_at=timezone.now())
    sign_in(page, live_server.url, project.owner)
    expect(page.get_by_test_id("archived-projects")).to_contain_text("Old sync")
    page.goto(f"{live_server.url}/projects/{project.pk}/members/")
    expect(page.get_by_test_id("archived-note")).to_contain_text("read-only")
    viewer = Membership.objects.get(project=project, role=Role.VIEWER)
    page.get_by_label(f"Role of {viewer.user.username}").select_option(Role.EDITOR)
    expect(page.locator("#refusal")).to_contain_text("This project is archived")
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER
