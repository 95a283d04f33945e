from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _install_revision_triggers(sender, using: str, **kwargs) -> None:
    from planner.checklist import revision

    revision.install(using)


class PlannerConfig(AppConfig):
    name = "planner"
    verbose_name = "Aethon planner"

    def ready(self) -> None:
        # Register the Celery tasks in every process (web too): services publish them by name.
        from planner.checklist import tasks as checklist_tasks  # noqa: F401
        from planner.notify import tasks as notify_tasks  # noqa: F401
        from planner.reviews import tasks as review_tasks  # noqa: F401
        from planner.runbook import tasks as runbook_tasks  # noqa: F401
        from planner.runs import tasks as run_tasks  # noqa: F401
        from planner.teamwork import tasks as teamwork_tasks  # noqa: F401

        from . import (
            checks,  # noqa: F401  registers the system checks
            timestamps,
        )

        # Every new PostgreSQL connection reads timestamps the faster way (planner.timestamps).
        timestamps.install()

        # After every migrate: the table of project revisions and the trigger of every table
        # holding a project's rows (planner.checklist.revision).
        post_migrate.connect(_install_revision_triggers, sender=self)
