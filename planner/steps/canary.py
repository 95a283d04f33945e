"""The canary probe's settings and "Probe now" button on a propagation-lag criterion's page."""

from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from planner.models import CanaryProbe, IntegrationProject
from planner.runs import canary
from planner.steps.canary_form import CanaryProbeForm
from planner.steps.freshness import _criterion, render_page
from planner.web.permissions import project_access


@project_access("edit")
@require_POST
def canary_settings(request: HttpRequest, project: IntegrationProject, pk: int):
    """Save the criterion connection's canary probe; errors are shown per field."""
    criterion = _criterion(project, pk)
    if criterion.freshness_connection_id is None:
        messages.error(request, "Name the connection to measure before configuring a probe.")
        return redirect("planner:criterion_freshness", project_id=project.pk, pk=criterion.pk)
    probe = canary.probe_of(criterion) or CanaryProbe(
        project=project, connection_id=criterion.freshness_connection_id
    )
    form = CanaryProbeForm(request.POST, instance=probe, prefix="canary")
    if not form.is_valid():
        return render_page(request, project, criterion, canary_form=form, status=400)
    probe = form.save(commit=False)
    value = form.cleaned_data.get("credential")
    if value:
        probe.credential_token = canary.seal_credential(
            value, probe.create_url, probe.credential_header
        )
    probe.save()
    messages.success(
        request, "Canary probe saved" + (" and enabled." if probe.enabled else " (off).")
    )
    return redirect("planner:criterion_freshness", project_id=project.pk, pk=criterion.pk)


@project_access("edit")
@require_POST
def canary_probe_now(request: HttpRequest, project: IntegrationProject, pk: int):
    criterion = _criterion(project, pk)
    try:
        message = canary.request_probe(criterion)
    except canary.ProbeFailed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, message)
    return redirect("planner:criterion_freshness", project_id=project.pk, pk=criterion.pk)
