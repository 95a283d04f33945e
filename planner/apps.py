from django.apps import AppConfig


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

        from . import checks  # noqa: F401  registers the system checks
