from django.core.management.base import BaseCommand

from planner.demo.loader import DEMO_PASSWORD, load_demo


class Command(BaseCommand):
    help = "Load the demo projects and users (safe to run again: nothing is duplicated)."

    def handle(self, *args, **options) -> None:
        projects = load_demo()
        self.stdout.write(self.style.SUCCESS(f"Demo ready: {len(projects)} projects."))
        self.stdout.write(f"Demo login: demo / {DEMO_PASSWORD}")
