"""A run split into key ranges: the run page lists each range and follows it by polling.

The ranges execute in the test thread (what free workers would do), one at a time, while the
page polls; the page must show them queued, then done, then the merged result.
"""

import re
import sqlite3

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from playwright.sync_api import Page, expect

from planner.models import SystemEndpoint, ValidationRun
from planner.runs import service as validation
from tests.browser.conftest import sign_in
from tests.factories import (
    ConnectionFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
    UserFactory,
    id_and_email_mapping,
)

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def sqlite_upload(table: str, rows) -> ContentFile:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE {table} (id INTEGER, email TEXT)")
    conn.executemany(f"INSERT INTO {table} VALUES (?, ?)", rows)
    conn.commit()
    data = conn.serialize()
    conn.close()
    return ContentFile(data, name=f"{table}.db")


def test_the_run_page_follows_each_key_range(page: Page, live_server, monkeypatch, settings):
    settings.AETHON_RUN_PARTITION_ROWS = 20
    settings.AETHON_RUN_CHUNK_ROWS = 10
    user = UserFactory()
    project = ProjectFactory(owner=user, name="CRM to billing")
    systems = []
    for name, table, rows in (
        ("CRM", "crm", [(i, f"c{i}@example.com") for i in range(1, 81)] + [(None, "x")]),
        ("Billing", "billing", [(i, f"c{i}@example.com") for i in range(1, 81) if i != 33]),
    ):
        system = SystemFactory(project=project, name=name)
        SystemEndpointFactory(
            system=system,
            kind=SystemEndpoint.Kind.SQLITE,
            dataset=table,
            upload=sqlite_upload(table, rows),
            upload_name=f"{table}.db",
        )
        systems.append(system)
    connection = ConnectionFactory(project=project, source=systems[0], target=systems[1])
    id_and_email_mapping(connection)
    ranges: list[int] = []
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    monkeypatch.setattr(validation, "dispatch_partition", lambda part: ranges.append(part.pk))
    run = validation.start_validation_run(connection, user)
    validation.execute_run(run.pk, heartbeat=False)
    assert len(ranges) == 4

    sign_in(page, live_server.url, user)
    page.goto(live_server.url + reverse("planner:run_show", args=[project.pk, run.pk]))
    table = page.get_by_test_id("run-partitions")
    expect(table).to_contain_text("Split into 4 key ranges")
    expect(page.get_by_test_id("partition-1")).to_contain_text("queued")
    expect(page.get_by_test_id("partition-4")).to_contain_text("and null keys")
    expect(page.locator("#run-live")).to_have_attribute("hx-trigger", "every 1s")

    validation.execute_partition(ranges[0], heartbeat=False)
    expect(page.get_by_test_id("partition-1")).to_contain_text("done", timeout=10_000)
    expect(page.get_by_test_id("partition-2")).to_contain_text("queued")
    expect(page.get_by_test_id("run-status")).to_have_text("Running")

    for pk in ranges[1:]:
        validation.execute_partition(pk, heartbeat=False)
    expect(page.get_by_test_id("run-status")).to_have_text("Failed", timeout=10_000)
    expect(page.locator("#run-live")).not_to_have_attribute("hx-trigger", re.compile(".*"))
    expect(page.get_by_test_id("reading")).to_contain_text(
        "Split into 4 key ranges compared in parallel"
    )
    assert ValidationRun.objects.get(pk=run.pk).summary["missing"] == 1
