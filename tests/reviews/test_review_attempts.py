"""Health reviews that finish honestly: no worker held while waiting, time limits, writes only by
the attempt that claimed the review, and a reaped review stays reaped."""

import time
from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from planner.models import HealthReview, ValidationRun
from planner.reviews import golive as going_live
from planner.reviews import service as reviews
from planner.reviews import tasks as review_tasks
from planner.runs import service as validation
from tests.factories import inline_workers, ready_project


@override_settings(AETHON_REVIEW_RUN_WAIT=60)
def test_a_review_waiting_for_a_run_holds_no_worker_then_finishes_when_it_is_done(db, monkeypatch):
    checks = inline_workers(monkeypatch)
    project, connection = ready_project()
    going_live.mark_live(project, project.owner)
    # Someone else's run is queued on the connection: the review must wait for it.
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    other = validation.start_validation_run(connection, project.owner)
    began = time.monotonic()
    review = reviews.start_review(project, project.owner)
    assert time.monotonic() - began < 5  # returned at once: nothing sleeps in the worker
    review.refresh_from_db()
    assert review.status == HealthReview.Status.RUNNING and review.run_ids == [other.pk]
    assert checks == [review.pk]  # a later check is scheduled instead
    # Still waiting: the check schedules itself again and writes nothing.
    assert reviews.check_review(review.pk, review.attempt).status == HealthReview.Status.RUNNING
    validation.execute_run(other.pk, heartbeat=False)
    done = reviews.check_review(review.pk, review.attempt)
    assert done.status == HealthReview.Status.HEALTHY, done.parts
    assert {p["run_id"] for p in done.parts if p["run_id"]} == {other.pk}


def test_a_reaped_review_stays_reaped(db, monkeypatch):
    checks = inline_workers(monkeypatch)
    project, connection = ready_project()
    going_live.mark_live(project, project.owner)
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    review = reviews.start_review(project, project.owner)
    review.refresh_from_db()
    assert review.status == HealthReview.Status.RUNNING and checks
    HealthReview.objects.filter(pk=review.pk).update(started_at=timezone.now() - timedelta(days=1))
    assert reviews.reap_stale_reviews() == 1
    # The run finishes and the old attempt's check arrives late: it must not write.
    validation.execute_run(review.run_ids[0], heartbeat=False)
    assert reviews.check_review(review.pk, review.attempt) is None
    review.refresh_from_db()
    assert review.status == HealthReview.Status.INCOMPLETE
    assert "stopped before it finished" in review.error and not review.criteria.exists()


def test_a_review_past_its_deadline_finishes_with_what_ran(db, monkeypatch):
    inline_workers(monkeypatch)
    project, connection = ready_project()
    going_live.mark_live(project, project.owner)
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    review = reviews.start_review(project, project.owner)
    HealthReview.objects.filter(pk=review.pk).update(deadline=timezone.now() - timedelta(minutes=5))
    assert reviews.finish_overdue_reviews() == [review.pk]
    review.refresh_from_db()
    assert review.status == HealthReview.Status.INCOMPLETE
    assert "did not finish in time" in review.failed_parts[0]["detail"]
    assert ValidationRun.objects.get(pk=review.run_ids[0]).is_active


def test_review_tasks_have_time_limits():
    for task in (review_tasks.run_review_task, review_tasks.check_review_task):
        assert task.soft_time_limit and task.time_limit > task.soft_time_limit


def test_a_review_out_of_time_ends_incomplete_only_for_its_own_attempt(db, monkeypatch):
    inline_workers(monkeypatch)
    project, _ = ready_project()
    going_live.mark_live(project, project.owner)
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    review = reviews.start_review(project, project.owner)
    review.refresh_from_db()
    assert not reviews.end_review(review.pk, review.attempt + 1, "late")
    assert reviews.end_review(review.pk, review.attempt, "out of time")
    review.refresh_from_db()
    assert review.status == HealthReview.Status.INCOMPLETE and review.error == "out of time"
