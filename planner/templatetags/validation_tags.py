"""`{% validation_evidence project %}`: the latest validation run and schedule per connection,
shown where runs count as evidence (step 6: reconciliation that keeps running after go-live)."""

from django import template

from ..models import Connection, IntegrationProject, RunSchedule, ValidationRun

register = template.Library()


@register.inclusion_tag("planner/_validation_evidence.html")
def validation_evidence(project: IntegrationProject) -> dict:
    connections = list(
        Connection.objects.filter(project=project).select_related("source", "target")
    )
    schedules = {s.connection_id: s for s in RunSchedule.objects.filter(project=project)}
    latest: dict[int, ValidationRun] = {}
    # Newest first: the first run seen per connection is its latest (one query in all).
    for run in ValidationRun.objects.filter(project=project).order_by("-created_at", "-pk"):
        latest.setdefault(run.connection_id, run)
        if len(latest) == len(connections):
            break
    rows = [
        {"connection": c, "run": latest.get(c.pk), "schedule": schedules.get(c.pk)}
        for c in connections
    ]
    return {"project": project, "rows": rows}
