"""Playwright fixtures for the browser flows, driving Debian's chromium (never a download).

Playwright's sync API runs an asyncio event loop in the test thread, so Django's guard against
ORM calls from async code has to be relaxed for the factories used in these tests.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import skip_or_fail
from tests.factories import PASSWORD

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path(os.environ.get("AETHON_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEFAULT_TIMEOUT_MS = 10_000
# Chromium's console wording when the Content Security Policy blocks something.
CSP_VIOLATION = re.compile(r"Content Security Policy|Refused to (execute|apply|load|evaluate)")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test item so `page` can tell whether the test failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        skip_or_fail(f"no chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
        except Exception as exc:  # Playwright raises its own Error for a browser that won't start
            skip_or_fail(f"chromium at {CHROMIUM} did not start: {exc}")
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    # Every flow runs under the app's real CSP: a blocked script or style, or a page served
    # without the policy, fails the test (a broken feature would otherwise go unnoticed).
    violations, unprotected = [], []
    page.on("console", lambda m: CSP_VIOLATION.search(m.text) and violations.append(m.text))
    page.on(
        "response",
        lambda r: (
            r.request.resource_type == "document"
            and r.headers.get("content-type", "").startswith("text/html")
            and "content-security-policy" not in r.headers
            and unprotected.append(r.url)
        ),
    )
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        artifacts = request.config.rootpath / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        try:
            page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
        except Exception as exc:  # a screenshot must never hide the real failure
            print(f"could not save a screenshot: {exc}")
    context.close()
    assert not violations, f"Content Security Policy violations: {violations}"
    assert not unprotected, f"pages served without a Content-Security-Policy: {unprotected}"


# ---------------------------------------------------------------------------------------------
# Helpers the flows share

NO_RELOAD = "window.__aethonNoReload"


def sign_in(page: Page, base_url: str, user) -> None:
    page.goto(f"{base_url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Integration projects")).to_be_visible()


def mark_page(page: Page) -> None:
    """Set a marker that only survives if the page is never reloaded."""
    page.evaluate(f"{NO_RELOAD} = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate(NO_RELOAD) is True, "the page was reloaded"


def navigator_state(page: Page, step_title: str):
    return page.locator("#navigator li", has_text=step_title).locator(".state")
