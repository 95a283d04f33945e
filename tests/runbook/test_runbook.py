"""The runbook: PDF content (read back with pdftotext), preview, exports, the Celery path."""

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from aethon.celery import app
from planner.checklist.signoff import project_hash, sign, step_hashes
from planner.models import Role, RunbookExport
from planner.runbook import service as rb
from planner.runbook.tasks import export_runbook
from tests.conftest import HTMX, client_for, skip_or_fail
from tests.factories import (
    ConnectionFactory,
    CriterionFactory,
    DataElementFactory,
    DecisionFactory,
    FieldMappingFactory,
    MembershipFactory,
    MonitorFactory,
    ObjectiveFactory,
    ProjectFactory,
    RunbookExportFactory,
    SystemFactory,
    TestCaseFactory,
    UserFactory,
    ValidationRunFactory,
    fill_steps_4_to_7,
)

SECTION_TITLES = [
    "Contents",
    "1. Objectives and success criteria",
    "2. Data mapping",
    "3. Integration pattern",
    "4. Incremental test plan",
    "5. Deployment and rollback",
    "6. Monitoring",
    "7. Training and feedback",
    "Sign-offs",
    "Change log",
]


def pdf_text(pdf: bytes, tmp_path) -> str:
    if not shutil.which("pdftotext"):
        skip_or_fail("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "runbook.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    )
    return out.stdout


@pytest.fixture
def full_project(project):
    """Every step filled, step 1 signed off by an approver."""
    ObjectiveFactory(project=project, business_objective="No inactive customer is invoiced.")
    criterion = CriterionFactory(project=project)
    crm = SystemFactory(project=project, name="CRM")
    billing = SystemFactory(project=project, name="Billing")
    DataElementFactory(project=project, name="customer status", source_of_truth=crm)
    connection = ConnectionFactory(project=project, source=crm, target=billing)
    FieldMappingFactory(
        project=project,
        connection=connection,
        source_field="account_status",
        target_field="is_active",
        rule="trim | lower | map(active=1, inactive=0)",
    )
    DecisionFactory(project=project, pattern="point_to_point", rationale="Two systems.")
    fill_steps_4_to_7(project, criteria=[criterion])
    approver = MembershipFactory(
        project=project, role=Role.APPROVER, user__first_name="Alex", user__last_name="Approver"
    )
    made = sign(project, 1, approver, "approve", "", step_hashes(project, [1])[1])
    return {"project": project, "signoff": made}


def test_the_pdf_has_every_section_a_mapping_row_and_the_sign_off_table(full_project, tmp_path):
    project = full_project["project"]
    pdf, pages, version = rb.render_pdf(project)
    assert pdf.startswith(b"%PDF") and pages >= 10
    assert version == project_hash(step_hashes(project))
    text = pdf_text(pdf, tmp_path)
    for title in SECTION_TITLES:
        assert title in text, title
    # The cover: project, version, readiness.
    assert project.name in text and version[:12] in text and "% ready" in text
    # A mapping row, every column on one line.
    row = next(line for line in text.splitlines() if "account_status" in line)
    assert "is_active" in row and "map(active=1" in row
    # The sign-off table: name, role, decision, version hash, freshness.
    signoff = full_project["signoff"]
    row = next(line for line in text.splitlines() if "Alex Approver" in line)
    for cell in ("Approver", "Approved", signoff.short_hash, "fresh"):
        assert cell in row, cell
    # The running footer: project name and page counter on a later page.
    assert f"Page 2 of {pages}" in text
    assert text.count(project.name) >= pages - 1
    # The table of contents carries page numbers.
    toc = next(line for line in text.splitlines() if "2. Data mapping" in line and "." * 5 in line)
    assert toc.rstrip()[-1].isdigit()


def test_the_html_preview_shows_the_same_content(full_project, owner_client):
    project = full_project["project"]
    html = owner_client.get(reverse("planner:runbook_preview", args=[project.pk])).content
    html = html.decode()
    for title in SECTION_TITLES:
        assert title in html
    assert "account_status" in html and full_project["signoff"].short_hash in html
    assert "Runbook preview" in html


def test_a_small_project_exports_in_one_click(full_project, member):
    project = full_project["project"]
    viewer = client_for(member(Role.VIEWER))
    response = viewer.post(reverse("planner:runbook_export", args=[project.pk]))
    export = RunbookExport.objects.get(project=project)
    assert response.status_code == 302
    assert response["Location"] == reverse("planner:export_download", args=[project.pk, export.pk])
    assert export.status == "done" and export.progress == 100 and export.pages >= 10
    assert export.version_hash == project_hash(step_hashes(project))
    download = viewer.get(response["Location"])
    assert download["Content-Type"] == "application/pdf"
    # Named for the reader: project, runbook, version; never the storage's random suffix.
    assert download["Content-Disposition"] == (
        f'attachment; filename="{slugify(project.name)}-runbook-{export.short_hash}.pdf"'
    )
    assert b"".join(download.streaming_content).startswith(b"%PDF")
    # The runbook page lists it with its version, marked current.
    page = viewer.get(reverse("planner:runbook", args=[project.pk])).content.decode()
    assert export.short_hash in page and "current" in page and "Download" in page
    # Outsiders get nothing, not even through a guessed URL.
    assert client_for(UserFactory()).get(response["Location"]).status_code == 404


def test_exporting_with_htmx_refreshes_the_list_and_hands_over_the_file(full_project, member):
    project = full_project["project"]
    viewer = client_for(member(Role.VIEWER))
    viewer.post(reverse("planner:runbook_export", args=[project.pk]))  # an older export
    response = viewer.post(reverse("planner:runbook_export", args=[project.pk]), **HTMX)
    older, newest = RunbookExport.objects.filter(project=project).order_by("pk")
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<tbody id="exports-body">')
    # Both exports listed, the new one first and downloadable.
    assert html.count('<tr id="export-') == 2
    assert html.index(f'id="export-{newest.pk}"') < html.index(f'id="export-{older.pk}"')
    download = reverse("planner:export_download", args=[project.pk, newest.pk])
    assert download in html
    assert json.loads(response["HX-Trigger"]) == {"runbook-ready": {"url": download}}


def test_the_test_plan_shows_a_linked_validation_run_as_evidence(project):
    other = ProjectFactory()
    ValidationRunFactory(project=other)  # numbers count per project, not installation-wide
    connection = ConnectionFactory(project=project)
    first = ValidationRunFactory(project=project, connection=connection, status="failed")
    run = ValidationRunFactory(
        project=project,
        connection=connection,
        status="passed",
        finished_at=timezone.make_aware(datetime(2026, 3, 4, 10, 0)),
    )
    assert (first.number, run.number) == (1, 2)
    TestCaseFactory(
        project=project, description="Nightly sync", status="passed", validation_run=run
    )
    html = rb.render_html(project)
    row = html[html.index("Nightly sync") :].split("</tr>")[0]
    assert "validation run #2, passed, 4 Mar 2026" in row


def test_a_big_project_goes_through_the_celery_task(project, owner_client, monkeypatch):
    monkeypatch.setattr(rb, "BIG_PROJECT_ROWS", 2)
    connection = ConnectionFactory(project=project)
    FieldMappingFactory.create_batch(3, project=project, connection=connection)
    queued = []
    monkeypatch.setattr(export_runbook, "apply_async", lambda args, **options: queued.extend(args))
    response = owner_client.post(reverse("planner:runbook_export", args=[project.pk]))
    export = RunbookExport.objects.get(project=project)
    assert response["Location"] == reverse("planner:runbook", args=[project.pk])
    assert queued == [export.pk] and export.status == "queued"

    # While queued, its row polls for progress.
    url = reverse("planner:export_status", args=[project.pk, export.pk])
    row = owner_client.get(url, **HTMX).content.decode()
    assert 'hx-trigger="every 1s"' in row and "Waiting for a worker" in row

    export_runbook(export.pk)  # what the worker runs
    export.refresh_from_db()
    assert (export.status, export.progress, export.attempts) == ("done", 100, 1)
    assert export.file.name.startswith(f"runbooks/{project.pk}/") and export.seconds > 0
    row = owner_client.get(url, **HTMX).content.decode()
    assert "hx-trigger" not in row and "Download" in row

    # Redelivered (acks late): a finished export is left alone.
    export_runbook(export.pk)
    export.refresh_from_db()
    assert export.attempts == 1


def use_closed_broker(monkeypatch) -> None:
    """Point Celery at a port where nothing listens, as when the broker is down."""
    url = "redis://127.0.0.1:1/0"
    # Celery reads CELERY_BROKER_URL from the environment before its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setitem(app.conf, "broker_url", url)


@pytest.fixture
def big_project(project, monkeypatch):
    monkeypatch.setattr(rb, "BIG_PROJECT_ROWS", 2)
    connection = ConnectionFactory(project=project)
    FieldMappingFactory.create_batch(3, project=project, connection=connection)
    return project


def test_a_big_export_while_the_broker_is_down_says_so_and_leaves_nothing_waiting(
    big_project, owner_client, monkeypatch
):
    use_closed_broker(monkeypatch)
    started = time.monotonic()
    response = owner_client.post(
        reverse("planner:runbook_export", args=[big_project.pk]), follow=True
    )
    assert time.monotonic() - started < 5
    assert response.status_code == 200
    html = response.content.decode()
    assert "The task queue is unreachable" in html and "Try again later" in html
    export = RunbookExport.objects.get(project=big_project)
    assert export.status == "failed" and export.error == rb.QUEUE_UNREACHABLE
    assert export.finished_at is not None and not export.file
    # Nothing polls for a worker that will never come.
    assert not RunbookExport.objects.filter(status__in=["queued", "running"]).exists()
    assert 'hx-trigger="every 1s"' not in html


def test_the_api_runbook_of_a_big_project_needs_no_broker(big_project, monkeypatch):
    from planner.api.tokens import create_token

    use_closed_broker(monkeypatch)
    _, raw = create_token(big_project.owner, "ci")
    response = Client().get(
        f"/api/projects/{big_project.pk}/runbook.pdf", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    # Made in the request, as for any project: a GET queues nothing and stores nothing.
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert not RunbookExport.objects.exists()


def test_the_task_runs_through_celery_in_eager_mode(project):
    export = rb.start_export(project, project.owner)
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        export_runbook.delay(export.pk)
    finally:
        app.conf.task_always_eager = eager
    export.refresh_from_db()
    assert export.status == "done"


def test_a_starting_pool_process_warms_up_pdf_rendering_before_any_export():
    """WeasyPrint's import and font set-up happen when a worker process starts, not during the
    first export someone waits for. (A fresh interpreter: this one imported it long ago.)"""
    code = (
        "import sys, django; django.setup()\n"
        "import aethon.celery\n"
        "from celery.signals import worker_process_init\n"
        "assert 'weasyprint' not in sys.modules\n"
        "worker_process_init.send(sender=None)\n"
        "assert 'weasyprint' in sys.modules\n"
        "print('warmed')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "aethon.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "warmed", done.stderr[-2000:]
    assert "warming up the PDF rendering failed" not in done.stderr


def test_a_failing_export_is_marked_failed_with_the_reason(project, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("fonts missing")

    monkeypatch.setattr(rb, "render_pdf", boom)
    export = rb.start_export(project, project.owner)
    rb.run_export(export.pk)
    export.refresh_from_db()
    assert export.status == "failed" and export.error == "RuntimeError: fonts missing"
    assert not export.file


def test_an_export_whose_worker_died_is_failed_not_left_running(project, owner_client):
    old = timezone.now() - timedelta(hours=1)
    running = RunbookExportFactory(project=project, status="running", progress=30)
    queued = RunbookExportFactory(project=project, status="queued")
    fresh = RunbookExportFactory(project=project, status="running")
    RunbookExport.objects.filter(pk=running.pk).update(updated_at=old)
    RunbookExport.objects.filter(pk=queued.pk).update(created_at=old)
    page = owner_client.get(reverse("planner:runbook", args=[project.pk])).content.decode()
    assert "its worker probably died" in page and "Is the Celery worker running?" in page
    # The page shows them failed without writing; the write path (the next export, a worker
    # starting) records it.
    statuses = dict(RunbookExport.objects.values_list("pk", "status"))
    assert statuses == {running.pk: "running", queued.pk: "queued", fresh.pk: "running"}
    rb.expire_stalled(project)
    statuses = dict(RunbookExport.objects.values_list("pk", "status"))
    assert statuses == {running.pk: "failed", queued.pk: "failed", fresh.pk: "running"}
    # A task redelivered more than once gives up instead of looping.
    RunbookExport.objects.filter(pk=fresh.pk).update(attempts=rb.MAX_ATTEMPTS)
    rb.run_export(fresh.pk)
    fresh.refresh_from_db()
    assert fresh.status == "failed" and "interrupted twice" in fresh.error


def test_no_download_for_an_unfinished_export(project, owner_client):
    export = RunbookExportFactory(project=project, status="running")
    url = reverse("planner:export_download", args=[project.pk, export.pk])
    assert owner_client.get(url).status_code == 404


def test_the_runbook_context_takes_a_fixed_number_of_queries(full_project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    project = full_project["project"]

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            rb.runbook_context(project)
        return len(ctx)

    few = count()
    connection_ = ConnectionFactory(project=project)
    FieldMappingFactory.create_batch(20, project=project, connection=connection_)
    TestCaseFactory.create_batch(10, project=project)
    MonitorFactory.create_batch(5, project=project)
    assert count() <= few + 8  # the change log's per-kind lookups, not one query per row


def test_the_runbook_prints_the_review_schedule_that_is_in_force(project, owner_client):
    """The review dates come from the project's editable cadence, not a fixed default."""
    from datetime import date

    from planner.models import ReviewSchedule
    from tests.factories import TrainingPlanFactory

    TrainingPlanFactory(project=project, go_live_on=date(2027, 1, 31))
    ReviewSchedule.objects.create(
        project=project, first_every_months=2, first_count=2, then_every_months=6
    )
    expected = [date(2027, 3, 31), date(2027, 5, 31), date(2027, 11, 30)]
    assert rb.runbook_context(project)["review_dates"] == expected
    html = owner_client.get(reverse("planner:runbook_preview", args=[project.pk])).content
    assert (
        "Every 2 months for the first 2 reviews, then every 6 months "
        "(31 Mar 2027, 31 May 2027, 30 Nov 2027)"
    ) in html.decode()
    # Step 7 shows the same dates.
    step7 = owner_client.get(reverse("planner:step", args=[project.pk, 7])).content.decode()
    assert "Reviews in the first year: 31 Mar 2027, 31 May 2027, 30 Nov 2027." in step7


def test_a_live_project_s_review_dates_start_at_its_go_live(project, owner_client):
    from datetime import date, datetime

    from planner.models import GoLive, ReviewSchedule
    from tests.factories import TrainingPlanFactory

    TrainingPlanFactory(project=project, go_live_on=date(2027, 1, 31))
    ReviewSchedule.objects.create(project=project, paused=False)  # the default cadence
    went_live = timezone.make_aware(datetime(2027, 2, 10, 9, 0))
    GoLive.objects.create(project=project, user=project.owner, created_at=went_live)
    dates = rb.runbook_context(project)["review_dates"]
    assert dates == [
        date(2027, 3, 10),
        date(2027, 4, 10),
        date(2027, 5, 10),
        date(2027, 8, 10),
        date(2027, 11, 10),
        date(2028, 2, 10),
    ]


def test_a_paused_review_schedule_prints_no_dates(project):
    from datetime import date

    from planner.models import ReviewSchedule
    from tests.factories import TrainingPlanFactory

    TrainingPlanFactory(project=project, go_live_on=date(2027, 1, 31))
    ReviewSchedule.objects.create(project=project, paused=True)
    assert rb.runbook_context(project)["review_dates"] == []


def test_a_mapping_row_prints_every_field_in_three_cells(project, tmp_path):
    """Three plain-text cells a row keep a big mapping quick to lay out; none of the row's
    fields may be lost in the merge."""
    FieldMappingFactory(
        project=project,
        source_field="acct_state",
        source_type="string",
        target_field="active_flag",
        target_type="string",
        max_length=1,
        required=True,
        null_rule="default",
        null_default="0",
        rule="map(active=1, inactive=0)",
        tolerance="0.5%",
        direction="bidirectional",
        frequency="minutes",
        every_minutes=15,
        source_of_truth="target",
        conflict_rule="last_write",
        notes="Legacy code X means closed",
    )
    row = rb.runbook_context(project)["mappings"][0][1][0]
    assert row == [
        "acct_state (string) → active_flag (string (1)), required",
        "map(active=1, inactive=0)",
        "Nulls: default '0' · tolerance: 0.5% · bidirectional, every 15 min"
        " · truth: target system; last write wins · notes: Legacy code X means closed",
    ]
    pdf, _, _ = rb.render_pdf(project)
    text = pdf_text(pdf, tmp_path)
    assert "Source field → target field (types)" in text
    line = next(line for line in text.splitlines() if "acct_state (string)" in line)
    assert "→ active_flag" in line and "map(active=1" in line and "Nulls: default" in line


def test_a_usual_mapping_row_takes_one_line(project, tmp_path):
    """Every wrapped line is one more box for WeasyPrint to lay out: the columns are sized so
    that a row with usual names, a four-step rule and no notes is printed on one line."""
    FieldMappingFactory(
        project=project,
        source_field="customer_status_code",
        source_type="string",
        target_field="account_active_flag",
        target_type="string",
        max_length=80,
        required=True,
        null_rule="reject",
        rule="trim | lower | map(active=1, inactive=0) | max_length(80)",
        notes="",
    )
    cells = rb.runbook_context(project)["mappings"][0][1][0]
    text = pdf_text(rb.render_pdf(project)[0], tmp_path)
    line = next(line for line in text.splitlines() if "customer_status_code" in line)
    for cell in cells:  # every cell whole on the row's one line
        assert " ".join(cell.split()) in " ".join(line.split()), cell


def test_the_test_plan_is_printed_on_landscape_pages(full_project):
    """Eight columns of sentences: on a portrait page a test case took four lines a row."""
    pages = laid_out_pages(full_project["project"])

    def page_of(section_id):
        return next(
            page._page_box
            for page in pages
            if any(
                box.element is not None and box.element.get("id") == section_id
                for box in page._page_box.descendants()
            )
        )

    test_plan = page_of("step-4")
    assert test_plan.margin_width() > test_plan.margin_height()
    objectives = page_of("step-1")
    assert objectives.margin_width() < objectives.margin_height()


def test_the_render_spaces_out_garbage_collections_and_restores_them(project, monkeypatch):
    import gc

    from planner.pdf import RENDER_GC_THRESHOLD

    seen = []
    before = gc.get_threshold()
    rb.render_pdf(project, lambda pct, message: seen.append((message, gc.get_threshold())))
    during = dict(seen)
    assert during["Laying out the pages"][0] == RENDER_GC_THRESHOLD > before[0]
    assert during["Laying out the pages"][1:] == before[1:]
    assert during["Collecting the project's content"] == before
    assert gc.get_threshold() == before

    def broken(*args, **kwargs):
        raise RuntimeError("layout failed")

    monkeypatch.setattr("weasyprint.HTML.render", broken)
    with pytest.raises(RuntimeError):
        rb.render_pdf(project)
    assert gc.get_threshold() == before


def test_overlapping_renders_restore_the_threshold_the_first_one_found():
    import gc

    from planner.pdf import RENDER_GC_THRESHOLD, fewer_collections

    before = gc.get_threshold()
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()  # another thread's render, started during the first
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == RENDER_GC_THRESHOLD  # the second is still rendering
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


def test_the_export_task_collects_garbage_once_the_export_is_done(project, monkeypatch):
    import gc

    export = RunbookExportFactory(project=project)
    statuses = []
    monkeypatch.setattr(
        gc,
        "collect",
        lambda *args: statuses.append(RunbookExport.objects.get(pk=export.pk).status),
    )
    export_runbook(export.pk)
    assert statuses == [RunbookExport.Status.DONE]


def laid_out_pages(project):
    """The runbook's pages as WeasyPrint lays them out, to read box positions."""
    from weasyprint import HTML

    from planner.pdf import no_fetching

    return HTML(string=rb.render_html(project), url_fetcher=no_fetching()).render().pages


def test_long_values_wrap_inside_the_page_in_every_table(full_project):
    """Tables take their column widths from the header row, so a value with no space in it
    (a path, a URL, an identifier) breaks inside its column rather than widening the table
    past the page's right margin and out of the printed area."""
    from weasyprint.formatting_structure import boxes

    project = full_project["project"]
    unbroken = "s3://exports/" + "customer_reference_" * 8 + "2026.csv"
    TestCaseFactory(project=project, data_set=unbroken, expected_result=unbroken)
    FieldMappingFactory(
        project=project, source_field=unbroken[:90], target_field="ref", rule="trim"
    )
    texts = []
    for page in laid_out_pages(project):
        page_box = page._page_box
        right = page_box.content_box_x() + page_box.width
        for box in page_box.descendants():
            if isinstance(box, boxes.TableBox):
                assert box.border_box_x() + box.border_width() <= right + 0.5
            if isinstance(box, boxes.TextBox):
                assert box.position_x + box.width <= right + 0.5, box.text
                texts.append(box.text)
    # Broken over lines, but every character printed: the data set, the expected result and
    # the source field.
    printed = "".join(texts)
    assert printed.count(unbroken) == 2 and unbroken[:90] in printed
    assert not any(unbroken in text for text in texts)  # it did have to break
