"""The web process and an idle worker do not load polars, sqlglot, the connectors or the
mapping engine: they load when a run, a check or an import needs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEAVY = (
    "polars",
    "sqlglot",
    "pymysql",
    "planner.connectors.base",
    "planner.connectors.registry",
    "planner.connectors.files",
    "planner.connectors.http_json",
    "planner.mapping.engine",
    "planner.runs.stages",
    "planner.runs.streamed",
)

WEB = """
import json, sys
import aethon.wsgi
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

def walk(patterns):
    for p in patterns:
        if isinstance(p, URLResolver):
            walk(p.url_patterns)
        else:
            p.callback  # imports the view's module

walk(get_resolver().url_patterns)
status = Client(SERVER_NAME="localhost").get("/accounts/login/").status_code
print(json.dumps({"status": status, "loaded": [m for m in HEAVY if m in sys.modules]}))
"""

WORKER = """
import json, sys
import django
django.setup()
import aethon.celery
aethon.celery.app.loader.import_default_modules()
print(json.dumps({"status": 0, "loaded": [m for m in HEAVY if m in sys.modules]}))
"""


def loaded_by(code: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "aethon.settings"}
    env["ALLOWED_HOSTS"] = "localhost"
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_web_process_serves_pages_without_polars_or_the_connectors():
    seen = loaded_by(WEB)
    assert seen["status"] == 200
    assert seen["loaded"] == []


def test_a_worker_with_every_task_registered_loads_no_connector_until_a_run():
    assert loaded_by(WORKER)["loaded"] == []
