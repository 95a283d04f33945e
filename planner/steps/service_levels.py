"""A success criterion's service level: compliance over its window, error budget, burn-rate
rules and plots (figures from planner.metrics.slo, pictures from planner.metrics.plots)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from planner.metrics import plots, slo
from planner.models import Alert, IntegrationProject, SuccessCriterion
from planner.web.common import project_context
from planner.web.permissions import project_access


def criterion_service_level(criterion: SuccessCriterion) -> plots.CriterionPlots:
    """What the criterion page, step 6, the review report and the runbook show of it."""
    return plots.criterion_plots(criterion)


@project_access("view")
def criterion_page(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    criterion = get_object_or_404(SuccessCriterion, project=project, pk=pk)
    ctx = project_context(request, project)
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
