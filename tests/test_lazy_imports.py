"""The web process and an idle worker start without polars, sqlglot, the connectors or the
mapping engine: they load when a run, a measurement or a sample needs them.

Each check runs in a fresh interpreter: this one imported everything long ago.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection as db

from tests.factories import (
    ConnectionFactory,
    FieldMappingFactory,
    ProjectFactory,
    SystemEndpointFactory,
)

ROOT = Path(__file__).resolve().parent.parent

HEAVY = (
    "polars",
    "sqlglot",
    "pymysql",
    "planner.connectors.base",
    "planner.connectors.registry",
    "planner.connectors.files",
    "planner.connectors.http_json",
    "planner.connectors.postgres",
    "planner.mapping.engine",
    "planner.runs.stages",
    "planner.runs.streamed",
)

WEB = """
import json, sys
import aethon.wsgi  # django.setup(): every app's ready(), every task module registered
from django.urls import URLResolver, get_resolver

def walk(patterns):
    for p in patterns:
        if isinstance(p, URLResolver):
            walk(p.url_patterns)
        else:
            p.callback  # imports the view's module

walk(get_resolver().url_patterns)
status = {}
if len(sys.argv) > 1:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user_id, project_id, connection_id = map(int, sys.argv[1:])
    client = Client(SERVER_NAME="localhost")
    client.force_login(get_user_model().objects.get(pk=user_id))
    pages = ["/", f"/projects/{project_id}/"]
    pages += [f"/projects/{project_id}/steps/{n}/" for n in range(1, 8)]
    pages.append(f"/projects/{project_id}/steps/2/connections/{connection_id}/")
    status = {page: client.get(page).status_code for page in pages}
print(json.dumps({"status": status, "loaded": [m for m in HEAVY if m in sys.modules]}))
"""


WORKER = """
import json, sys
import django
django.setup()
import aethon.celery
from celery.signals import worker_process_init

app = aethon.celery.app
app.loader.import_default_modules()
app.finalize(auto=True)
assert "planner.validation_tasks.run_validation" in app.tasks, sorted(app.tasks)
worker_process_init.send(sender=None)  # what a starting pool process does
print(json.dumps({"loaded": [m for m in HEAVY if m in sys.modules]}))
"""


def loaded_by(code: str, *args: str, **env: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "aethon.settings", **env}
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_web_process_starts_and_resolves_every_url_without_polars():
    assert loaded_by(WEB)["loaded"] == []


def test_the_dashboard_and_step_pages_render_without_polars_or_the_connectors(transactional_db):
    if db.vendor != "postgresql":
        pytest.skip("the pages are served from the test database by another process")
    project = ProjectFactory()
    connection = ConnectionFactory(project=project)
    SystemEndpointFactory(system=connection.source)
    SystemEndpointFactory(system=connection.target)
    FieldMappingFactory(project=project, connection=connection, rule="trim | lower")
    s = db.settings_dict
    url = f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    seen = loaded_by(
        WEB,
        str(project.owner.pk),
        str(project.pk),
        str(connection.pk),
        DATABASE_URL=url,
    )
    assert seen["status"] and set(seen["status"].values()) == {200}, seen["status"]
    assert seen["loaded"] == []


def test_an_idle_worker_with_every_task_registered_loads_no_connector():
    assert loaded_by(WORKER)["loaded"] == []


POSTGRES_ONLY = """
import json, sys
import django
django.setup()
from planner.connectors.guard import GuardPolicy
from planner.connectors.registry import open_connector

config = {"host": "127.0.0.1", "database": "x", "user": "x", "table": "t"}
open_connector("postgres", config, {}, GuardPolicy(allow_hosts=frozenset({"127.0.0.1"})))
others = ("files", "http_json", "mysql", "sqlite")
print(json.dumps({"loaded": [m for m in others if f"planner.connectors.{m}" in sys.modules]}))
"""


def test_a_run_between_postgresql_tables_loads_no_other_connector():
    assert loaded_by(POSTGRES_ONLY)["loaded"] == []
