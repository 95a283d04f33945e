"""Celery tasks: thin wrappers around the functions that do the work."""

import gc
import logging

from celery import shared_task

from planner.runbook.service import EXPORT_TASK, expire_stalled, run_export

log = logging.getLogger(__name__)


# Limits well above the benchmark's seconds; a run past them is failed, not left running.
@shared_task(name=EXPORT_TASK, acks_late=True, soft_time_limit=300, time_limit=330)
def export_runbook(export_id: int) -> None:
    """Produce the PDF of RunbookExport `export_id`; progress and outcome live on that row."""
    run_export(export_id)
    # The render spaced out the collector's runs (planner.pdf.fewer_collections); free what
    # its document left now, after the export is marked done, rather than during the next one.
    gc.collect()


def expire_after_worker_start() -> None:
    """A starting worker fails the exports a killed worker left, the way their page does."""
    from django import db

    from planner.models import IntegrationProject, RunbookExport

    try:
        active = RunbookExport.Status.QUEUED, RunbookExport.Status.RUNNING
        with_exports = IntegrationProject.objects.filter(runbook_exports__status__in=active)
        for project in with_exports.distinct():
            expire_stalled(project)
    except Exception:  # a worker that cannot tidy up must still start and work
        log.exception("expiring stalled runbook exports at worker start failed")
    finally:
        if not db.connection.in_atomic_block:
            db.close_old_connections()
