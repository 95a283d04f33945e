"""Celery tasks of health reviews: thin wrappers around reviews/service.py and schedule.py.

Registered by aethon/celery.py (worker) and planner/apps.py (every process), under the names they
had before the package layout, which queued messages and beat rows carry.
"""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from planner.models import HealthReview, IntegrationProject
from planner.reviews import schedule as review_schedule
from planner.reviews import service as reviews

log = logging.getLogger(__name__)


# Starting and checking a review are short (they queue runs and read their results); the limits
# end an attempt that hangs (a locked database, a stuck mail server) as incomplete.
REVIEW_SOFT_LIMIT = float(getattr(settings, "AETHON_REVIEW_TASK_SECONDS", 300))


@shared_task(
    name=reviews.REVIEW_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=REVIEW_SOFT_LIMIT,
    time_limit=REVIEW_SOFT_LIMIT + 30,
)
def run_review_task(self, review_id: int) -> None:
    if not HealthReview.objects.filter(pk=review_id).exists():
        raise self.retry(countdown=1, max_retries=10)
    try:
        reviews.run_review(review_id)
    except SoftTimeLimitExceeded:
        review = HealthReview.objects.filter(pk=review_id).first()
        if review is not None:
            reviews.end_review(review.pk, review.attempt, TIME_LIMIT_ERROR)


@shared_task(
    name=reviews.CHECK_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=REVIEW_SOFT_LIMIT,
    time_limit=REVIEW_SOFT_LIMIT + 30,
)
def check_review_task(review_id: int, attempt: int) -> None:
    try:
        reviews.check_review(review_id, attempt)
    except SoftTimeLimitExceeded:
        reviews.end_review(review_id, attempt, TIME_LIMIT_ERROR)


TIME_LIMIT_ERROR = "The review ran out of time; the parts it measured are kept."


def start_if_due(project_id: int, now=None) -> int | None:
    """Claim the project's due date (once) and start its review; returns the review id."""
    claimed = review_schedule.claim_due(project_id, now)
    if claimed is None:
        return None
    due, missed = claimed
    project = IntegrationProject.objects.get(pk=project_id)
    try:
        review = reviews.start_review(
            project, None, HealthReview.Trigger.SCHEDULE, due_at=due, missed=missed
        )
    except reviews.ReviewRefused as exc:
        log.warning("scheduled review of project %s refused: %s", project_id, exc)
        return None
    return review.pk


@shared_task(name="planner.review_tasks.scheduled_review", ignore_result=True)
def scheduled_review(project_id: int) -> int | None:
    """The project's own beat entry (a one-off at its next due date)."""
    return start_if_due(project_id)


@shared_task(name="planner.review_tasks.dispatch_due_reviews", ignore_result=True)
def dispatch_due_reviews() -> list[int]:
    """Every few minutes: start every due review once, and end reviews whose worker died."""
    now = timezone.now()
    reviews.reap_stale_reviews(now)
    reviews.finish_overdue_reviews(now)
    started = []
    for project_id in review_schedule.due_project_ids(now):
        if (pk := start_if_due(project_id, now)) is not None:
            started.append(pk)
    return started
