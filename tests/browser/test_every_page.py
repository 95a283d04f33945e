"""Every page of a filled demo project, at desktop and at phone width, as a user sees it.

Each page must fit the screen's width (nothing scrolls the page sideways), log no console
error (htmx's own errors included) or uncaught exception, load every request it makes, and pass
axe-core without a serious or critical violation. Screenshots of the main pages at both widths
are written to `<AETHON_VAR_DIR>/screenshots/` (`var/screenshots/` by default), so anyone can
look at them after `make test`. One browser context per width; the pages are visited in turn.
"""

import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page

from planner.checklist.evidence import Evidence
from planner.checklist.signoff import project_hash, step_hashes
from planner.models import (
    Alert,
    BackfillPlan,
    Connection,
    ConnectionOwnership,
    DataElement,
    ErrorStrategy,
    FieldMapping,
    GoLive,
    HealthReview,
    IncidentEntry,
    IntegrationProject,
    Membership,
    Monitor,
    PersonalField,
    Role,
    RollbackStep,
    RollbackTrigger,
    RolloutPhase,
    SecurityReview,
    SuccessCriterion,
    SystemProfile,
    TestCase,
)
from planner.reviews.golive import evidence_snapshot
from planner.runs.service import start_validation_run
from tests.browser.conftest import DEFAULT_TIMEOUT_MS, sign_in
from tests.conftest import client_for
from tests.factories import (
    PASSWORD,
    IncidentFactory,
    MembershipFactory,
    MonitorFactory,
    RollbackStepFactory,
    RollbackTriggerFactory,
    RolloutPhaseFactory,
    RunbookExportFactory,
    TestCaseFactory,
)
from tests.urlwalk import planner_patterns, url_for

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
SIDEWAYS = "document.documentElement.scrollWidth - window.innerWidth"
SERIOUS = {"serious", "critical"}
# The pages whose screenshots are kept (the others are checked all the same).
MAIN_PAGES = {
    "project_list",
    "overview",
    "step-1",
    "step-2",
    "step-3",
    "step-4",
    "step-5",
    "step-6",
    "step-7",
    "mapping_editor",
    "inventory",
    "runs",
    "run_show",
    "golive",
    "reviews",
    "review_show",
    "alerts",
    "history",
    "runbook",
    "members",
    "governance",
}
# Fragments for htmx, not pages a person opens: checked by the permission and GET walks.
FRAGMENTS = re.compile(r"_(show|edit|add|rule_check|progress|differences|status)$")


def screenshot_dir() -> Path:
    folder = Path(settings.VAR_DIR) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _first(queryset, make):
    return queryset.first() or make()


def demo_world(celery_eager_on) -> dict:
    """The demo's CRM project, given what the demo leaves out so every page has content: a real
    validation run, a go-live, a finished review, an open alert, a runbook export."""
    call_command("load_demo")
    project = IntegrationProject.objects.get(name="CRM to billing: customer status")
    connection = Connection.objects.filter(project=project).first()
    demo = get_user_model().objects.get(username="demo")
    demo.set_password(PASSWORD)
    demo.save()
    run = start_validation_run(connection, demo)
    run.refresh_from_db()
    mapping = FieldMapping.objects.filter(connection=connection).first()
    objects = {
        "criterion": SuccessCriterion.objects.filter(project=project).first(),
        "element": DataElement.objects.filter(project=project).first(),
        "system": connection.source,
        "connection": connection,
        "member": _first(
            Membership.objects.filter(project=project, role=Role.VIEWER),
            lambda: MembershipFactory(project=project, role=Role.VIEWER),
        ),
        "mapping": mapping,
        "ownership": ConnectionOwnership.objects.get(connection=connection),
        "errorstrategy": ErrorStrategy.objects.get(connection=connection),
        "securityreview": SecurityReview.objects.get(connection=connection),
        "backfill": BackfillPlan.objects.get(connection=connection),
        "systemprofile": SystemProfile.objects.filter(system=connection.source).first(),
        "rolloutphase": _first(
            RolloutPhase.objects.filter(project=project),
            lambda: RolloutPhaseFactory(project=project),
        ),
        "personalfield": PersonalField.objects.filter(mapping__connection=connection).first(),
        "testcase": _first(
            TestCase.objects.filter(project=project), lambda: TestCaseFactory(project=project)
        ),
        "trigger": _first(
            RollbackTrigger.objects.filter(project=project),
            lambda: RollbackTriggerFactory(project=project),
        ),
        "rollbackstep": _first(
            RollbackStep.objects.filter(project=project),
            lambda: RollbackStepFactory(project=project),
        ),
        "monitor": _first(
            Monitor.objects.filter(project=project), lambda: MonitorFactory(project=project)
        ),
        "incident": _first(
            IncidentEntry.objects.filter(project=project),
            lambda: IncidentFactory(project=project),
        ),
        "export": RunbookExportFactory(
            project=project, status="done", file=SimpleUploadedFile("runbook.pdf", b"%PDF-")
        ),
        "run": run,
        "review": HealthReview.objects.create(
            project=project,
            trigger="manual",
            started_by=demo,
            status=HealthReview.Status.HEALTHY,
            finished_at=timezone.now(),
            kpis={"error_rate_pct": 0.5, "mismatch_rate_pct": 1.25, "records_synced": 1200},
        ),
        "alert": Alert.objects.create(
            project=project,
            fingerprint="f",
            severity="warning",
            title="error rate 5 %",
            value=5.0,
            unit="%",
        ),
    }
    # Marked live as mark_live records it (the demo is not ready, so not through the gate).
    hashes = step_hashes(project)
    snapshot = {
        "ready": True,
        "percent": 100,
        "step_hashes": {str(n): h for n, h in hashes.items()},
        "version": project_hash(hashes),
        "evidence": evidence_snapshot(project, Evidence.load(project)),
    }
    GoLive.objects.create(project=project, user=demo, snapshot=snapshot)
    return {"project": project, "objects": objects, "user": demo}


def page_urls(world) -> list[tuple[str, str]]:
    """(name, path) of every page a person opens: GET answers a whole HTML document."""
    client = client_for(world["user"])
    pages = []
    for name, pattern in planner_patterns():
        short = name.split(":", 1)[1]
        if FRAGMENTS.search(short) and short not in MAIN_PAGES:
            continue
        path = url_for(name, pattern, world)
        response = client.get(path)
        if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
            continue  # a POST-only action, a download
        if b"<!doctype html>" not in response.content[:200].lower():
            continue
        if short == "step":
            project = world["project"].pk
            pages += [(f"step-{n}", reverse(name, args=[project, n])) for n in range(1, 8)]
        else:
            pages.append((short, path))
    return pages


def check_page(page: Page, axe: Axe, url: str) -> list[str]:
    """What is wrong with one page, in words (an empty list when nothing is)."""
    problems: list[str] = []
    page.goto(url)
    page.wait_for_load_state("networkidle")
    sideways = page.evaluate(SIDEWAYS)
    if sideways > 0:
        problems.append(f"scrolls sideways by {sideways} px")
    results = axe.run(page)
    for violation in results.response["violations"]:
        if violation["impact"] in SERIOUS:
            where = [n["target"] for n in violation["nodes"][:3]]
            problems.append(f"axe {violation['impact']}: {violation['id']} at {where}")
    return problems


@pytest.fixture
def celery_eager_on(celery_eager):
    return True


def test_every_page_fits_loads_cleanly_and_passes_axe_at_both_widths(
    browser, live_server, celery_eager_on
):
    world = demo_world(celery_eager_on)
    pages = page_urls(world)
    names = {name for name, _ in pages}
    # The walk really covers the project: a page dropping out of it is a failure too.
    assert names >= MAIN_PAGES, MAIN_PAGES - names
    axe = Axe()
    problems: list[str] = []
    for width, viewport in WIDTHS.items():
        problems += walk_at(browser, live_server.url, world["user"], pages, width, viewport, axe)
    assert not problems, "\n".join(problems)


def walk_at(browser, base: str, user, pages, width: str, viewport: dict, axe: Axe) -> list[str]:
    """Visit every page in one browser context of this width; the problems found, in words."""
    shots = screenshot_dir()
    problems: list[str] = []
    errors: list[str] = []
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} from {r.url}"))
    page.on("requestfailed", lambda r: errors.append(f"failed request {r.url}"))
    try:
        sign_in(page, base, user)
        for name, path in pages:
            errors.clear()
            found = check_page(page, axe, f"{base}{path}") + errors
            problems += [f"{width} {name} ({path}): {p}" for p in found]
            if name in MAIN_PAGES:
                page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
    finally:
        context.close()
    return problems
