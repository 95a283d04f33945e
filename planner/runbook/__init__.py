"""The PDF runbook: service, Celery task and views."""
