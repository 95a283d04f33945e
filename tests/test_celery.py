"""The Celery app reaches the configured broker (Redis in CI, a folder by default)."""

import os
import subprocess
import sys

from django.urls import clear_url_caches, get_resolver

from aethon.celery import _warm_up_urls, app

from .conftest import skip_or_fail


def test_broker_is_reachable_and_accepts_a_message():
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=2, timeout=5)
            queue = conn.SimpleQueue("aethon-selftest")
            queue.put({"ping": 1})
            message = queue.get(timeout=5)
            assert message.payload == {"ping": 1}
            message.ack()
            queue.close()
    except OSError as exc:  # pragma: no cover - depends on the machine
        skip_or_fail(f"broker {app.conf.broker_url} unreachable: {exc}")


def test_tasks_are_acked_late_so_a_killed_worker_does_not_lose_them():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_a_pool_process_loads_its_urls_when_it_starts():
    # A failing run's notice links to the run: the first reverse() in a process would load
    # every URL module inside the run that failed.
    clear_url_caches()
    assert not get_resolver()._populated
    _warm_up_urls()
    assert get_resolver()._populated


def allocator_setting(**env: str) -> str:
    code = "import os, aethon.celery; print(os.environ['_RJEM_MALLOC_CONF'])"
    base = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, env={**base, **env}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_a_worker_gives_polars_one_allocator_arena_unless_the_operator_chose():
    # Set before a pool process loads polars, whose jemalloc reads it once.
    assert allocator_setting() == "narenas:1"
    assert allocator_setting(_RJEM_MALLOC_CONF="narenas:8") == "narenas:8"
