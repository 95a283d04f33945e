"""After go-live: health reviews, their schedule, alerts, Celery tasks and views."""
