"""The portfolio dashboard (the home page)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from planner.checklist import golive, links
from planner.models import Alert, HealthReview, Membership, ReviewSchedule
from planner.teamwork.assignments import overdue_count


def portfolio(request: HttpRequest) -> HttpResponse:
    """Every project the user can see: readiness, live or not, reviews and open alerts.

    A fixed number of queries however many projects: the standings are loaded together."""
    mine = (
        Membership.objects.filter(user=request.user)
        .select_related("project", "project__owner")
        .annotate(overdue_work=overdue_count(timezone.localdate()))
    )
    archived = list(mine.filter(project__archived_at__isnull=False).order_by("project__name"))
    memberships = list(mine.filter(project__archived_at__isnull=True).order_by("project__name"))
    ids = [m.project_id for m in memberships]
    last_review: dict[int, HealthReview] = {}
    finished = HealthReview.objects.filter(project_id__in=ids).exclude(
        status__in=HealthReview.ACTIVE
    )
    for r in finished.order_by("-created_at", "-pk"):
        last_review.setdefault(r.project_id, r)
    next_due = dict(
        ReviewSchedule.objects.filter(project_id__in=ids, next_due__isnull=False).values_list(
            "project_id", "next_due"
        )
    )
    standings = golive.standings([m.project for m in memberships])
    open_alerts: dict[int, int] = {}
    for pid in Alert.objects.filter(project_id__in=ids, state=Alert.State.OPEN).values_list(
        "project_id", flat=True
    ):
        open_alerts[pid] = open_alerts.get(pid, 0) + 1
    rows = [
        {
            "project": m.project,
            # Reversed once per pattern: ids filled in, not resolved again for every row.
            "overview_url": links.url("planner:overview", m.project_id),
            "golive_url": links.url("planner:golive", m.project_id),
            "alerts_url": links.url("planner:alerts", m.project_id),
            "role": m.get_role_display(),
            "standing": standings[m.project_id],
            "last_review": last_review.get(m.project_id),
            "next_due": next_due.get(m.project_id),
            "open_alerts": open_alerts.get(m.project_id, 0),
            "overdue_work": m.overdue_work,
        }
        for m in memberships
    ]
    return render(request, "planner/project_list.html", {"rows": rows, "archived": archived})
