"""Validation runs: service, stages, reconciliation, Celery tasks, schedules and views.

Also the connection settings of systems (endpoints, their form, secrets and page).
"""
