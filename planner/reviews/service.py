"""Health reviews after go-live, built from the validation pieces that already exist.

A review re-runs every connection's validation (connectivity, mapping validation,
reconciliation) as ordinary run tasks, checks the step-6 monitors (alerts), compares the
measured figures with each step-1 success criterion, and lists the incidents and feedback since
the previous review. It waits for its runs without holding a worker: a check task is scheduled
again until they finish or the review's deadline passes. Every write is for the attempt that
claimed the review and only while it is running, so a reaped review stays reaped.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from planner.metrics import figures as kpis
from planner.metrics import slo
from planner.models import (
    Alert,
    Connection,
    CriterionResult,
    FeedbackItem,
    GoLive,
    HealthReview,
    IntegrationProject,
    RunKind,
    RunStage,
    SuccessCriterion,
    ValidationRun,
)
from planner.pdf import no_fetching
from planner.runs import alerts
from planner.runs import service as validation
from planner.task_queue import PUBLISH_RETRY

log = logging.getLogger(__name__)
Status = HealthReview.Status
PART_STAGES = ("connectivity", "mapping", "reconciliation")
TREND_REVIEWS = 24
# The review's Celery task (planner/reviews/tasks.py), published by name so that this module
# does not import the tasks built on it; the name predates the package layout.
REVIEW_TASK = "planner.review_tasks.run_review"
CHECK_TASK = "planner.review_tasks.check_review"


class ReviewRefused(ValueError):
    pass


def start_review(
    project: IntegrationProject,
    user=None,
    trigger: str = HealthReview.Trigger.MANUAL,
    due_at: datetime | None = None,
    missed: int = 0,
) -> HealthReview:
    """Queue a review; one active review per project (a second start returns the first)."""
    if not GoLive.objects.current().filter(project=project).exists():
        raise ReviewRefused("Health reviews start after go-live: mark the project live first.")
    active = HealthReview.objects.filter(project=project, status__in=HealthReview.ACTIVE)
    if existing := active.first():
        return existing
    try:
        with transaction.atomic():
            review = HealthReview.objects.create(
                project=project,
                trigger=trigger,
                started_by=user if getattr(user, "pk", None) else None,
                due_at=due_at,
                missed_occurrences=missed,
            )
    except IntegrityError:
        if existing := active.first():
            return existing
        raise
    dispatch(review)
    return review


def dispatch(review: HealthReview) -> None:
    from aethon.celery import app

    try:
        app.tasks[REVIEW_TASK].apply_async(args=[review.pk], retry=True, retry_policy=PUBLISH_RETRY)
    except Exception as exc:  # noqa: BLE001 - the broker is down: no worker will run it
        log.warning("health review %s not queued: %s", review.pk, exc)
        HealthReview.objects.filter(pk=review.pk, status=Status.QUEUED).update(
            status=Status.INCOMPLETE, finished_at=timezone.now(), error=validation.QUEUE_UNREACHABLE
        )
        review.refresh_from_db()


# ---------------------------------------------------------------------------------------------
# Running


def _claim(review_id: int) -> HealthReview | None:
    """Take a queued review: a new attempt, with its deadline."""
    now = timezone.now()
    wait = timedelta(seconds=float(getattr(settings, "AETHON_REVIEW_RUN_WAIT", 1800)))
    with transaction.atomic():
        review = (
            HealthReview.objects.select_for_update()
            .filter(pk=review_id, status=Status.QUEUED)
            .first()
        )
        if review is None:
            return None
        review.status, review.started_at = Status.RUNNING, now
        review.attempt += 1
        review.deadline = now + wait
        review.save(update_fields=["status", "started_at", "attempt", "deadline"])
    return HealthReview.objects.select_related("project").get(pk=review_id)


def _mine(review: HealthReview):
    """The review's row while this attempt still owns it (running, same attempt)."""
    return HealthReview.objects.filter(pk=review.pk, status=Status.RUNNING, attempt=review.attempt)


def _save_parts(review: HealthReview) -> bool:
    return bool(_mine(review).update(parts=review.parts, kpis=review.kpis))


def _start_run(review: HealthReview, connection: Connection) -> ValidationRun:
    trigger = (
        ValidationRun.Trigger.SCHEDULE
        if review.trigger == HealthReview.Trigger.SCHEDULE
        else ValidationRun.Trigger.UI
    )
    # Published to any worker: the review itself never waits inside one.
    return validation.start_validation_run(
        connection, review.started_by, RunKind.VALIDATION, trigger
    )


def _parts_of(connection: Connection, run: ValidationRun, stages: list[RunStage]) -> list[dict]:
    by_name = {s.name: s for s in stages}
    out = []
    for name in PART_STAGES:
        s = by_name.get(name)
        status = s.status if s else "error"
        detail = (s.error if s else "") or ("" if s else "the run has no such stage")
        if run.is_active and s and s.status in ("pending", "running"):
            status, detail = "error", "the validation run did not finish in time"
        elif s and s.status == "pending":
            status, detail = "error", run.error or "the stage never ran"
        out.append(
            {
                "part": name,
                "connection": str(connection),
                "status": status,
                "detail": detail,
                "run_id": run.pk,
            }
        )
    return out


def _part(part: str, status: str, connection=None, detail: str = "") -> dict:
    """One entry of a review's parts list (a part that did not run has no run id)."""
    connection = "" if connection is None else str(connection)
    return {
        "part": part,
        "connection": connection,
        "status": status,
        "detail": detail,
        "run_id": None,
    }


def run_review(review_id: int) -> HealthReview | None:
    """Start a queued review (what the Celery task calls): claim it, start one validation run
    per connection, and leave the waiting to `check_review` (a task scheduled again until the
    runs finish or the deadline passes), so no worker is held while other tasks work."""
    review = _claim(review_id)
    if review is None:
        return None
    project = review.project
    previous = (
        HealthReview.objects.filter(project=project, created_at__lt=review.created_at)
        .exclude(pk=review.pk)
        .order_by("-created_at")
        .first()
    )
    live = GoLive.objects.current().filter(project=project).first()
    review.since = previous.created_at if previous else (live.created_at if live else None)
    run_ids = []
    for c in Connection.objects.filter(project=project).select_related("source", "target"):
        try:
            run_ids.append(_start_run(review, c).pk)
        except Exception as exc:  # noqa: BLE001 - one connection's failure must not lose the rest
            log.exception("review %s: validation of %s failed", review.pk, c)
            review.parts.append(_part("validation", "error", c, validation.short_error(exc)))
    review.run_ids = run_ids
    if not _mine(review).update(since=review.since, run_ids=run_ids, parts=review.parts):
        return None
    return check_review(review.pk, review.attempt)


def check_review(review_id: int, attempt: int) -> HealthReview | None:
    """Finish the review if its runs are done (or its deadline passed); else look again later.

    Only the attempt that claimed the review writes: a review reaped meanwhile stays reaped.
    """
    review = HealthReview.objects.select_related("project").filter(pk=review_id).first()
    if review is None or review.status != Status.RUNNING or review.attempt != attempt:
        return None
    runs = list(ValidationRun.objects.filter(pk__in=review.run_ids))
    waiting = [r for r in runs if r.is_active]
    if waiting and review.deadline and timezone.now() < review.deadline:
        schedule_check(review)
        return review
    return _complete(review, runs)


def schedule_check(review: HealthReview) -> None:
    from aethon.celery import app

    try:
        app.tasks[CHECK_TASK].apply_async(
            args=[review.pk, review.attempt],
            countdown=float(getattr(settings, "AETHON_REVIEW_CHECK_SECONDS", 15)),
            retry=True,
            retry_policy=PUBLISH_RETRY,
        )
    except Exception as exc:  # noqa: BLE001 - the dispatcher finishes it once the deadline passes
        log.warning("health review %s: next check not queued: %s", review.pk, exc)


def _complete(review: HealthReview, runs: list[ValidationRun]) -> HealthReview | None:
    connections = {c.pk: c for c in Connection.objects.filter(project_id=review.project_id)}
    raws = []
    for run in sorted(runs, key=lambda r: r.pk):
        c = connections.get(run.connection_id)
        if c is None:
            continue
        stages = list(run.stages.all())
        review.parts += _parts_of(c, run, stages)
        if not run.is_active:
            raws.append(kpis.raw_of_run(run, stages))
            try:
                alerts.evaluate_run(run, source=f"health review #{review.pk}")
            except Exception as exc:  # noqa: BLE001
                log.exception("review %s: alerts of %s failed", review.pk, c)
                review.parts.append(_part("alerts", "error", c, validation.short_error(exc)))
    measured = kpis.aggregate(raws)
    review.kpis = {"raw": measured, **kpis.derive(measured)}
    return _finish(review)


def _finish(review: HealthReview) -> HealthReview | None:
    with transaction.atomic():
        # The row lock orders this write after a reaper's: a reaped review is left alone.
        if not _mine(review).select_for_update().exists():
            return None
        try:
            with transaction.atomic():
                compare_criteria(review)
            review.parts.append(_part("criteria", "passed"))
        except Exception as exc:  # noqa: BLE001
            log.exception("review %s: criteria failed", review.pk)
            review.parts.append(_part("criteria", "error", detail=validation.short_error(exc)))
        if review.failed_parts or not review.parts:
            status = Status.INCOMPLETE
        elif (
            any(p["status"] == "failed" for p in review.parts)
            or review.criteria.filter(outcome=CriterionResult.Outcome.MISSED).exists()
            or Alert.objects.filter(project_id=review.project_id, state=Alert.State.OPEN).exists()
        ):
            status = Status.ISSUES
        else:
            status = Status.HEALTHY
        error = ""
        if not review.run_ids and not review.failed_parts:
            error = "The project has no connections to review."
            status = Status.INCOMPLETE
        _mine(review).update(
            status=status,
            finished_at=timezone.now(),
            error=error,
            parts=review.parts,
            kpis=review.kpis,
        )
    review.refresh_from_db()
    return review


def end_review(review_id: int, attempt: int, error: str) -> bool:
    """End this attempt as incomplete (its time limit ran out), keeping what it stored."""
    review = HealthReview(pk=review_id, attempt=attempt)
    return bool(
        _mine(review).update(status=Status.INCOMPLETE, finished_at=timezone.now(), error=error)
    )


def compare_criteria(review: HealthReview) -> list[CriterionResult]:
    """Each criterion against the review's figures, or its compliance over the review period,
    or its manual evidence: never "met" on nothing measured."""
    figures = review.kpis
    end = timezone.now()
    results = []
    for c in SuccessCriterion.objects.filter(project_id=review.project_id):
        # A service-level criterion is judged over the review period (since the previous
        # review; its own window for the first one), not by this review's single run.
        over_period = None
        if slo.judged_by_compliance(c):
            over_period = slo.compliance(c, end=end, start=review.since, rules=False)
        j = kpis.judge_criterion(c, figures, over_period)
        results.append(
            CriterionResult(
                review=review,
                criterion=c,
                criterion_text=str(c)[:300],
                outcome=j.outcome,
                measured=j.value,
                unit=j.unit,
                reason=j.reason[:300],
            )
        )
    CriterionResult.objects.bulk_create(results)
    return results


def reap_stale_reviews(now: datetime | None = None) -> int:
    """A review whose worker died is ended as incomplete, keeping the parts it stored."""
    now = now or timezone.now()
    limit = timedelta(seconds=float(getattr(settings, "AETHON_REVIEW_STALE_SECONDS", 4 * 3600)))
    stale = HealthReview.objects.filter(
        status=Status.RUNNING, started_at__lt=now - limit
    ) | HealthReview.objects.filter(status=Status.QUEUED, created_at__lt=now - limit)
    return stale.update(
        status=Status.INCOMPLETE,
        finished_at=now,
        error="The review stopped before it finished (its worker was lost); the parts it "
        "measured are kept.",
    )


def finish_overdue_reviews(now: datetime | None = None) -> list[int]:
    """Reviews past their deadline whose next check was lost: finish them with what ran."""
    now = now or timezone.now()
    grace = timedelta(seconds=float(getattr(settings, "AETHON_REVIEW_CHECK_SECONDS", 15)) * 4)
    overdue = HealthReview.objects.filter(status=Status.RUNNING, deadline__lt=now - grace)
    return [
        r.pk for r in overdue.only("pk", "attempt") if check_review(r.pk, r.attempt) is not None
    ]


# ---------------------------------------------------------------------------------------------
# The report


def since_items(review: HealthReview) -> list[FeedbackItem]:
    items = FeedbackItem.objects.filter(project_id=review.project_id)
    if review.since:
        items = items.filter(occurred_at__gt=review.since)
    return list(items.filter(occurred_at__lte=review.finished_at or review.created_at))


@dataclass
class Series:
    key: str
    label: str
    points: list[dict]
    line: str
    top: float


def trend_chart(project: IntegrationProject, upto: HealthReview | None = None) -> dict:
    """Error rate and mismatch rate over finished reviews: an inline SVG's geometry."""
    reviews = HealthReview.objects.filter(project=project).exclude(status__in=HealthReview.ACTIVE)
    if upto is not None:
        reviews = reviews.filter(created_at__lte=upto.created_at)
    done = list(reviews.order_by("-created_at")[:TREND_REVIEWS])[::-1]
    width, height, left, bottom = 480, 160, 40, 20
    values = [r.kpis.get(k) for r in done for k in ("error_rate_pct", "mismatch_rate_pct")]
    top = max([v for v in values if v is not None] + [1.0])
    top = float(f"{top * 1.1:.2g}")
    step = (width - left - 10) / max(len(done) - 1, 1)
    series = []
    for key, label in (
        ("error_rate_pct", "Error rate %"),
        ("mismatch_rate_pct", "Mismatch rate %"),
    ):
        points = []
        for i, r in enumerate(done):
            v = r.kpis.get(key)
            if v is None:
                continue
            x = round(left + i * step, 1)
            y = round(height - bottom - (v / top) * (height - bottom - 10), 1)
            points.append({"x": x, "y": y, "value": v, "review": r})
        series.append(
            Series(key, label, points, " ".join(f"{p['x']},{p['y']}" for p in points), top)
        )
    labels = [
        {"x": round(left + i * step, 1), "text": f"{r.created_at:%d %b}"}
        for i, r in enumerate(done)
    ]
    return {
        "series": series,
        "labels": labels,
        "width": width,
        "height": height,
        "left": left,
        "base": height - bottom,
        "top": top,
        "count": len(done),
    }


def render_pdf(review: HealthReview, context: dict) -> bytes:
    from django.template.loader import render_to_string
    from weasyprint import HTML

    html = render_to_string("planner/review_report_print.html", context)
    return HTML(string=html, url_fetcher=no_fetching()).write_pdf()
