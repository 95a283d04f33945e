"""Celery tasks: thin wrappers around the functions that do the work."""

from celery import shared_task

from planner.runbook.service import run_export


# Limits well above the benchmark's seconds; a run past them is failed, not left running.
@shared_task(
    name="planner.tasks.export_runbook", acks_late=True, soft_time_limit=300, time_limit=330
)
def export_runbook(export_id: int) -> None:
    """Produce the PDF of RunbookExport `export_id`; progress and outcome live on that row."""
    run_export(export_id)
