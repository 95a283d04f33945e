import logging
import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aethon.settings")
# polars allocates through its own jemalloc, which keeps freed pages per arena (by default
# four per core) for reuse: a run's chunks leave each arena holding some. One arena measured
# 20 MiB less at the peak of a 1 M-row run read in key ranges, for the same CPU time. Read
# when polars loads in a pool process, so an operator's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "narenas:1")

app = Celery("aethon")
app.config_from_object("django.conf:settings", namespace="CELERY")
# A pool process that a task left above this resident size (KiB) is replaced once the task ends,
# so memory one huge file took is given back instead of staying with the worker for good.
app.conf.worker_max_memory_per_child = int(
    os.environ.get("AETHON_WORKER_MAX_MEMORY_KB", 1024 * 1024)
)
# Each domain package keeps its Celery tasks in its own tasks.py.
app.autodiscover_tasks(
    [
        "planner.checklist",
        "planner.runs",
        "planner.reviews",
        "planner.runbook",
        "planner.notify",
        "planner.teamwork",
    ]
)


@worker_ready.connect
def _reap_after_worker_start(sender=None, **kwargs):
    # Without beat nothing else notices the runs of a worker that was killed as a whole.
    from planner.runbook.tasks import expire_after_worker_start
    from planner.runs.tasks import reap_after_worker_start

    reap_after_worker_start(sender, **kwargs)
    expire_after_worker_start()


@worker_process_init.connect
def _warm_up_pdf_rendering(**kwargs):
    # The first runbook a process lays out pays WeasyPrint's import and font set-up (seconds):
    # paid here, when the pool process starts, instead of by the person waiting for a PDF.
    from planner.runbook.service import warm_up

    try:
        warm_up()
    except Exception:  # a worker that cannot warm up still works, only its first PDF is slower
        logging.getLogger(__name__).exception("warming up the PDF rendering failed")


@worker_process_init.connect
def _warm_up_urls(**kwargs):
    # A run's failure notice links to the run: the first reverse() in a process imports every
    # URL module (the API's schemas among them). Paid at start, not by the first failing run.
    from django.urls import reverse

    try:
        reverse("planner:run_show", args=[1, 1])  # imports and indexes every URL module
    except Exception:  # a worker whose URLs fail to load still runs; the notice will say why
        logging.getLogger(__name__).exception("loading the URL configuration failed")
