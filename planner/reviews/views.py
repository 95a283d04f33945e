"""Going live and what follows: the go-live page (verdict, marking live), health reviews (the
editable cadence, starting one by hand, the report as page and PDF with trends, incidents and
feedback), and alerts with their channels."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from planner.checklist import golive
from planner.checklist.registry import STEPS_BY_NUMBER
from planner.checklist.signoff import project_hash, step_hashes
from planner.models import (
    Alert,
    AlertChannel,
    FeedbackItem,
    GoLive,
    HealthReview,
    IntegrationProject,
    ReviewSchedule,
)
from planner.reviews import golive as going_live
from planner.reviews import schedule as review_schedule
from planner.reviews import service as reviews
from planner.reviews.forms import ChannelForm, FeedbackForm, ReviewScheduleForm
from planner.runs import alerts as alerting
from planner.web.common import project_context
from planner.web.concurrency import StaleEdit, save_versioned
from planner.web.permissions import can, project_access


def _hub(request, project, **extra) -> HttpResponse:
    ctx = project_context(request, project)
    schedule = review_schedule.in_force(project)  # a page only shows it: not saved
    live = GoLive.objects.current().filter(project=project).select_related("user").first()
    role = request.membership.role
    ctx.update(
        live=live,
        schedule=schedule,
        schedule_form=extra.pop("schedule_form", None) or ReviewScheduleForm(instance=schedule),
        feedback_form=extra.pop("feedback_form", None) or FeedbackForm(),
        upcoming=review_schedule.due_dates(schedule, live.created_at, 8) if live else [],
        reviews=HealthReview.objects.filter(project=project).select_related("started_by")[:50],
        feedback=FeedbackItem.objects.filter(project=project).select_related("reported_by")[:30],
        chart=reviews.trend_chart(project),
        can_review=can(role, "review"),
        open_alerts=Alert.objects.filter(project=project, state=Alert.State.OPEN).count(),
        **extra,
    )
    return render(request, "planner/reviews.html", ctx)


@project_access("view")
@require_GET
def reviews_page(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return _hub(request, project)


@project_access("view", write="edit")
@require_POST
def review_schedule_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    schedule = review_schedule.schedule_of(project)
    form = ReviewScheduleForm(request.POST, instance=schedule)
    if not form.is_valid():
        return _hub(request, project, schedule_form=form)
    try:
        save_versioned(form.save(commit=False), form.cleaned_data["expected_version"])
    except StaleEdit:
        form.add_error(None, "Someone else changed the schedule meanwhile; reload and try again.")
        return _hub(request, project, schedule_form=form)
    schedule = review_schedule.recompute(ReviewSchedule.objects.get(pk=schedule.pk))
    when = f"{schedule.next_due:%d %b %Y}" if schedule.next_due else "none (paused or not live)"
    messages.success(request, f"Review schedule saved. Next review: {when}.")
    return redirect("planner:reviews", project_id=project.pk)


@project_access("view", write="review")
@require_POST
def review_start(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    try:
        review = reviews.start_review(project, request.user)
    except reviews.ReviewRefused as exc:
        messages.error(request, str(exc))
        return redirect("planner:reviews", project_id=project.pk)
    return redirect("planner:review_show", project_id=project.pk, pk=review.pk)


@project_access("view", write="review")
@require_POST
def feedback_add(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        return _hub(request, project, feedback_form=form)
    item = form.save(commit=False)
    item.project, item.reported_by = project, request.user
    item.save()
    messages.success(request, f"Logged the {item.get_kind_display().lower()}.")
    return redirect("planner:reviews", project_id=project.pk)


def _report_context(request, project, review: HealthReview) -> dict:
    ctx = project_context(request, project)
    ctx.update(
        review=review,
        criteria=list(review.criteria.all()),
        items=reviews.since_items(review),
        chart=reviews.trend_chart(project, upto=review),
        alerts=Alert.objects.filter(project=project, opened_at__gte=review.created_at)[:50]
        if not review.is_active
        else [],
        open_alerts=Alert.objects.filter(project=project, state=Alert.State.OPEN),
    )
    return ctx


@project_access("view")
@require_GET
def review_show(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    review = get_object_or_404(HealthReview, project=project, pk=pk)
    ctx = _report_context(request, project, review)
    # The report polls itself while running; the poll that sees it finish must get the report
    # alone too, or the whole page (header, navigator) would land inside the report.
    if request.htmx:
        return render(request, "planner/review_report.html#report", ctx)
    return render(request, "planner/review_report.html", ctx)


@project_access("view")
@require_GET
def review_pdf(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    review = get_object_or_404(HealthReview, project=project, pk=pk)
    pdf = reviews.render_pdf(review, _report_context(request, project, review))
    response = HttpResponse(pdf, content_type="application/pdf")
    name = slugify(f"{project.name} health review {review.pk}")
    response["Content-Disposition"] = f'attachment; filename="{name}.pdf"'
    return response


@project_access("view", write="edit")
def alerts_page(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    form = ChannelForm()
    if request.method == "POST":
        if remove := request.POST.get("remove"):
            channel = get_object_or_404(AlertChannel, project=project, pk=remove)
            channel.delete()
            messages.success(request, f"Removed {channel}.")
            return redirect("planner:alerts", project_id=project.pk)
        form = ChannelForm(request.POST)
        if form.is_valid():
            channel = form.save(commit=False)
            channel.project = project
            channel.save()
            messages.success(request, f"Added {channel}.")
            return redirect("planner:alerts", project_id=project.pk)
    ctx = project_context(request, project)
    ctx.update(
        form=form,
        channels=AlertChannel.objects.filter(project=project),
        alerts=Alert.objects.filter(project=project).select_related(
            "monitor", "connection", "acknowledged_by"
        )[:100],
    )
    return render(request, "planner/alerts.html", ctx, status=400 if form.errors else 200)


@project_access("edit")
@require_POST
def alert_acknowledge(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    """Someone has the alert: its reminders and escalation stop."""
    alert = get_object_or_404(Alert, project=project, pk=pk)
    if alerting.acknowledge(alert, request.user):
        messages.success(request, f"Acknowledged '{alert.title}'.")
    else:
        messages.info(request, "That alert is already acknowledged or resolved.")
    return redirect("planner:alerts", project_id=project.pk)


@project_access("view", write="manage")
def golive_page(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    if request.method == "POST":
        if request.POST.get("confirm") != "yes":
            messages.error(
                request, "Confirm: tick the box to confirm the go-live on the evidence shown."
            )
            return redirect("planner:golive", project_id=project.pk)
        try:
            going_live.mark_live(project, request.user, request.POST.get("version") or None)
        except going_live.GoLiveRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{project.name} is live. Health reviews are scheduled.")
            return redirect("planner:reviews", project_id=project.pk)
        return redirect("planner:golive", project_id=project.pk)
    ctx = project_context(request, project)
    v = golive.verdict(project, ctx["evidence"])
    hashes = step_hashes(project)
    ctx.update(
        verdict=v,
        version=project_hash(hashes),
        changed_steps=(
            [
                (STEPS_BY_NUMBER[n], STEPS_BY_NUMBER[n].url(project.pk))
                for n, h in hashes.items()
                if v.live.snapshot.get("step_hashes", {}).get(str(n)) != h
            ]
            if v.live
            else []
        ),
        history=going_live.golive_history(project),
        can_mark_live=can(request.membership.role, "manage"),
        max_run_age_days=golive.max_run_age().days,
    )
    return render(request, "planner/golive.html", ctx)


@project_access("view", write="manage")
@require_POST
def golive_revert(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    try:
        going_live.revert_live(project, request.user, request.POST.get("reason", ""))
    except going_live.GoLiveRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{project.name} is back to not live. Reviews are stopped.")
    return redirect("planner:golive", project_id=project.pk)
