"""Gunicorn settings for production: `gunicorn -c gunicorn.conf.py aethon.wsgi`.

Every value can be overridden from the environment. Workers are recycled: after a number of
requests (spread by a jitter so they do not all restart at once), and as soon as a request
leaves one above a resident-memory ceiling, so memory a large request took is given back.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 1000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 100))
# Long work (validation runs, big PDFs) goes through Celery; a request taking longer is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
# A worker above this resident size (MiB) finishes its request and is replaced; 0 turns it off.
max_memory_mb = int(os.environ.get("GUNICORN_MAX_MEMORY_MB", 1024))
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log


def resident_mb() -> float:
    """This process's resident set size now (not its peak), in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def post_request(worker, req, environ, resp):
    if max_memory_mb and resident_mb() > max_memory_mb:
        worker.log.warning(
            "Worker %s holds %.0f MiB (ceiling %s MiB): replacing it after this request.",
            worker.pid,
            resident_mb(),
            max_memory_mb,
        )
        worker.alive = False  # as max_requests does: the arbiter starts a fresh worker
