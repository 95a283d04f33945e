"""Handing a task to the broker while a person waits on the page.

Celery's own defaults retry a lost broker for a long time and then raise out of the view (a
500, and the work item left "waiting for a worker"). Here publishing gives up within seconds
and raises `QueueUnreachable`, so the caller can fail its row with a reason the user can act on.
"""

import logging

log = logging.getLogger(__name__)

# A refused or silent broker is given up on in about 3 s: the user is waiting.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
PUBLISH_CONNECT_TIMEOUT = 3


class QueueUnreachable(Exception):
    """The broker could not take the task; no worker will run it."""


def publish(task, *args, **options):
    """Queue `task(*args)` and return its AsyncResult, or raise QueueUnreachable quickly when
    the broker is down. `options` go to `apply_async` (a queue, for instance)."""
    from aethon.celery import app

    try:
        with app.connection_for_write(connect_timeout=PUBLISH_CONNECT_TIMEOUT) as conn:
            return task.apply_async(
                args=list(args),
                connection=conn,
                retry=True,
                retry_policy=PUBLISH_RETRY,
                **options,
            )
    except Exception as exc:  # noqa: BLE001 - whatever the transport raised, nothing was queued
        log.warning("%s%r not queued: %s", task.name, args, exc)
        raise QueueUnreachable(str(exc)) from exc
