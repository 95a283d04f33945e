"""The web process and an idle worker start without polars, sqlglot, the connectors or the
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
import aethon.wsgi  # django.setup(): every app's ready(), every task module registered
print(json.dumps({"loaded": [m for m in HEAVY if m in sys.modules]}))
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


def test_the_web_process_starts_without_polars_or_the_connectors():
    assert loaded_by(WEB)["loaded"] == []
