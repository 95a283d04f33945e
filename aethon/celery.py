import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aethon.settings")

app = Celery("aethon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Validation runs keep their tasks in planner/validation_tasks.py (next to planner/tasks.py).
app.autodiscover_tasks(related_name="validation_tasks")
# Health reviews (go-live, issue 6) keep theirs in planner/review_tasks.py.
app.autodiscover_tasks(related_name="review_tasks")
