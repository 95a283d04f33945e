from django.apps import AppConfig


class PlannerConfig(AppConfig):
    name = "planner"
    verbose_name = "Aethon planner"

    def ready(self) -> None:
        from . import checks  # noqa: F401  registers the system checks
