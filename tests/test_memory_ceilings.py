"""Workers have a memory ceiling: Celery replaces a pool process a task left too big, gunicorn
replaces a web worker a request left too big, and both recycle on a schedule."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def python(code: str, **env: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_celery_pool_processes_have_a_memory_ceiling():
    code = "from aethon.celery import app; print(app.conf.worker_max_memory_per_child)"
    env = {k: v for k, v in os.environ.items() if k != "AETHON_WORKER_MAX_MEMORY_KB"}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    assert done.stdout.strip() == str(1024 * 1024)  # KiB: 1 GiB
    assert python(code, AETHON_WORKER_MAX_MEMORY_KB="524288") == "524288"


def test_the_dev_script_starts_the_worker_with_the_ceiling():
    script = (ROOT / "scripts" / "run-dev.sh").read_text()
    worker = script[script.index('celery" -A aethon worker') :].split(">var/log", 1)[0]
    assert '--max-memory-per-child="${AETHON_WORKER_MAX_MEMORY_KB:-1048576}"' in worker


def gunicorn_config(**env: str) -> dict[str, str]:
    done = subprocess.run(  # noqa: S603
        [str(BIN / "gunicorn"), "--print-config", "-c", "gunicorn.conf.py", "aethon.wsgi"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=60,
        check=True,
    )
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def test_gunicorn_recycles_workers_and_times_out_stuck_requests():
    config = gunicorn_config()
    assert (config["max_requests"], config["max_requests_jitter"], config["timeout"]) == (
        "1000",
        "100",
        "60",
    )
    assert gunicorn_config(GUNICORN_MAX_REQUESTS="50")["max_requests"] == "50"
    readme = (ROOT / "README.md").read_text()
    assert "gunicorn -c gunicorn.conf.py aethon.wsgi" in readme


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("ceiling, replaced", [("1", True), ("0", False)])
def test_gunicorn_replaces_a_worker_a_request_left_above_the_ceiling(tmp_path, ceiling, replaced):
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_MAX_MEMORY_MB": ceiling,
        "GUNICORN_ACCESS_LOG": "",
    }
    with log.open("w") as out:
        server = subprocess.Popen(  # noqa: S603
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "aethon.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(2):
            deadline = time.monotonic() + 30
            while True:
                try:
                    # A redirect to the sign-in page: no database needed.
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)  # noqa: S310
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text()
    assert ("replacing it after this request" in text) is replaced, text
    assert (text.count("Booting worker with pid") > 1) is replaced, text
