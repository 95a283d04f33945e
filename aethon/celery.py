import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aethon.settings")

app = Celery("aethon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
