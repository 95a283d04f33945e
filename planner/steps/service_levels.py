"""A success criterion's service level: compliance over its window, error budget, burn-rate
rules and plots (figures from planner.metrics.slo, pictures from planner.metrics.plots)."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from planner.metrics import plots, slo
from planner.models import Alert, IntegrationProject, SuccessCriterion
from planner.web.common import project_context
from planner.web.permissions import project_access


def criterion_service_level(criterion: SuccessCriterion) -> plots.CriterionPlots:
    """What the criterion page, step 6, the review report and the runbook show of it."""
    return plots.criterion_plots(criterion)


@project_access("view")
def criterion_page(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    ctx = project_context(request, project)
    # The navigator's evidence already holds the project's criteria: no second query.
    criterion = next((c for c in ctx["evidence"].criteria if c.pk == pk), None)
    if criterion is None:
        raise Http404("No such success criterion in this project.")
    level = criterion_service_level(criterion)
    ctx.update(
        criterion=criterion,
        level=level,
        window=slo.duration_text(slo.window_of(criterion)),
        min_coverage=slo.min_coverage_pct(),
        alerts=list(
            Alert.objects.filter(
                project=project, fingerprint__startswith=f"slo:{criterion.pk}:"
            ).order_by("-opened_at")[:10]
        ),
    )
    return render(request, "planner/criterion.html", ctx)
