import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aethon.settings")

app = Celery("aethon")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each domain package keeps its Celery tasks in its own tasks.py.
app.autodiscover_tasks(["planner.runs", "planner.reviews", "planner.runbook"])
