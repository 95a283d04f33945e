"""A team at work, in two browsers, on a desktop and at phone width (390 px), each page checked
with axe-core: the owner invites a colleague by email, who sets a password from the mailed
link; the owner assigns them step 2 with a due date; they find it under My work, open the
step's thread and comment with an @mention picked from the autocomplete by keyboard; the owner
sees the bell count, follows the notification, resolves the comment; the colleague marks the
work done.
"""

import re
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from planner.models import Assignment, Comment, Notification
from tests.browser.conftest import DEFAULT_TIMEOUT_MS, sign_in
from tests.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
SERIOUS = {"serious", "critical"}
NEW_PASSWORD = "a-long-unusual-passphrase-42"  # noqa: S105


def accessible(page: Page) -> None:
    """No serious or critical axe-core finding on the page as it stands."""
    page.wait_for_load_state("networkidle")
    found = [
        f"{v['id']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in Axe().run(page).response["violations"]
        if v["impact"] in SERIOUS
    ]
    assert not found, f"{page.url}: {found}"


@pytest.mark.parametrize("width", list(WIDTHS))
def test_invite_assign_comment_mention_notify_done(
    page: Page, browser, live_server, settings, celery_eager, width
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.AETHON_BASE_URL = live_server.url
    w, h = WIDTHS[width]
    page.set_viewport_size({"width": w, "height": h})
    owner = UserFactory(username="olivia")
    project = ProjectFactory(owner=owner, name="CRM to billing")

    # The owner invites a colleague who has no account yet.
    sign_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/members/")
    page.get_by_label("Username or email").fill("dana@example.com")
    page.locator("form:has([name=who]) [name=role]").select_option("editor")
    page.get_by_role("button", name="Invite").click()
    expect(page.get_by_text("invitation pending")).to_be_visible()
    (invitation,) = [m for m in mail.outbox if "dana@example.com" in m.to]
    link = re.search(r"https?://\S+/accounts/invite/\S+/", invitation.body).group(0)

    # The colleague, in a browser of their own, sets a password from the link.
    context = browser.new_context(viewport={"width": w, "height": h})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    dana = context.new_page()
    dana.goto(link)
    expect(dana.get_by_role("heading", name="Set your password")).to_be_visible()
    accessible(dana)
    dana.locator("[name=new_password1]").fill(NEW_PASSWORD)
    dana.locator("[name=new_password2]").fill(NEW_PASSWORD)
    dana.get_by_role("button", name="Set password and sign in").click()
    expect(dana.get_by_role("link", name="My work")).to_be_visible()

    # The owner assigns step 2 to them, due tomorrow.
    due = timezone.localdate() + timedelta(days=1)
    page.goto(f"{live_server.url}/projects/{project.pk}/steps/2/")
    page.get_by_role("link", name="Assign step").click()
    accessible(page)
    page.locator("[name=assignee]").select_option(label="dana@example.com (Editor)")
    page.locator("[name=due_date]").fill(due.isoformat())
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("step-assignee")).to_contain_text("Assigned to dana@example.com")
    assert Assignment.objects.get().due_date == due

    # The colleague sees the assignment under the bell and in My work.
    dana.reload()
    expect(dana.get_by_test_id("bell")).to_have_accessible_name("Notifications, 1 unread")
    dana.get_by_role("link", name="My work").click()
    accessible(dana)
    work = dana.get_by_test_id("my-work")
    expect(work).to_contain_text(due.strftime("%-d %b %Y"))
    work.get_by_role("link", name=re.compile(r"^Step 2")).click()
    expect(dana.get_by_role("heading", level=1)).to_contain_text("Step 2.")

    # They comment on the step and mention the owner, chosen from the list by keyboard.
    dana.get_by_test_id("step-comments").click()
    accessible(dana)
    box = dana.locator("#comment-body")
    box.fill("Which currency field is the source of truth? @oli")
    box.press("End")
    box.type("v")  # an input event after the fill, as typing makes
    expect(dana.locator("#mention-list [data-mention=olivia]")).to_be_visible()
    accessible(dana)
    box.press("ArrowDown")
    expect(dana.locator("#mention-list [data-mention=olivia]")).to_be_focused()
    dana.keyboard.press("Enter")
    expect(box).to_have_value("Which currency field is the source of truth? @olivia ")
    expect(box).to_be_focused()
    dana.get_by_role("button", name="Post").click()
    expect(dana.get_by_test_id("thread")).to_contain_text("source of truth? @olivia")
    comment = Comment.objects.get()
    assert list(comment.mentions.all()) == [owner]

    # The owner's bell counts the mention; the notification leads to the comment.
    page.goto(f"{live_server.url}/")
    expect(page.get_by_test_id("bell")).to_have_accessible_name("Notifications, 1 unread")
    page.get_by_test_id("bell").click()
    accessible(page)
    page.get_by_role("link", name=re.compile("mentioned you on Step 2")).click()
    expect(page).to_have_url(re.compile(rf"/steps/2/comments/#comment-{comment.pk}$"))
    page.get_by_test_id(f"resolve-{comment.pk}").click()
    expect(page.get_by_test_id("thread")).to_contain_text("resolved by olivia")
    assert Notification.objects.get(recipient=owner).kind == "mention"
    # a mail went out for each: the invitation, the assignment, the mention
    assert {tuple(m.to) for m in mail.outbox} == {("dana@example.com",), (owner.email,)}

    # The colleague marks the work done: My work is empty again.
    dana.get_by_role("link", name="My work").click()
    dana.get_by_role("button", name=re.compile(r"^Mark Step 2.* done$")).click()
    expect(dana.get_by_text("Nothing is assigned to you.")).to_be_visible()
    assert Assignment.objects.get().done_at is not None
    context.close()
