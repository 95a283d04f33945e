"""A system's connection settings: edit them, and "Test connection" against the real system."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from planner.connectors import ConnectorError
from planner.models import IntegrationProject, System, SystemEndpoint
from planner.runs.endpoint_forms import SECRET_FIELDS, EndpointForm
from planner.runs.endpoints import TestOutcome, endpoint_of, record_test, test_connector
from planner.web.common import project_context
from planner.web.concurrency import StaleEdit, keep_input_after_conflict
from planner.web.permissions import project_access

PAGE = "planner/system_settings.html"


def settings_url(system: System) -> str:
    return reverse("planner:system_settings", args=[system.project_id, system.pk])


def _system(project: IntegrationProject, system_id: int) -> System:
    return get_object_or_404(System, project=project, pk=system_id)


def _page(
    request, project, system, form, outcome: TestOutcome | None = None, recorded=False
) -> HttpResponse:
    ctx = project_context(request, project)
    ctx.update(
        system=system, endpoint=endpoint_of(system), form=form, outcome=outcome, recorded=recorded
    )
    return render(request, PAGE, ctx)


# Outermost, so an error anywhere below (the permission check included) reports no secret.
@sensitive_post_parameters(*SECRET_FIELDS)
@project_access("view", write="edit")
def system_settings(request: HttpRequest, project: IntegrationProject, system_id: int):
    system = _system(project, system_id)
    endpoint = endpoint_of(system)
    if request.method != "POST":
        return _page(request, project, system, EndpointForm(system=system, endpoint=endpoint))
    form = EndpointForm(request.POST, request.FILES, system=system, endpoint=endpoint)
    if form.is_valid():
        try:
            saved = form.save()
        except StaleEdit as conflict:
            keep_input_after_conflict(
                form,
                conflict,
                "Someone else saved these settings while you were editing. Your input is kept"
                " (secrets and files must be given again); save again to keep yours.",
            )
        else:
            messages.success(
                request,
                f"Saved the connection settings of {system.name}. Use “Test connection” to"
                " check them against the real system.",
            )
            return redirect(settings_url(saved.system))
    return _page(request, project, system, form)


def _unchanged(form: EndpointForm, endpoint: SystemEndpoint | None) -> bool:
    """Does the tested form say exactly what is stored? Then the result is worth keeping."""
    if endpoint is None:
        return False
    data = form.cleaned_data
    typed = any(data.get(n) for n in ("password", "token", "api_key"))
    return (
        data["kind"] == endpoint.kind
        and form.config == endpoint.config
        and data["dataset"] == endpoint.dataset
        and data["key_fields"] == endpoint.key_fields
        and data.get("upload") is None
        and not typed
        and not data.get("clear_secrets")
    )


@sensitive_post_parameters(*SECRET_FIELDS)
@project_access("edit")
@require_POST
def system_test(request: HttpRequest, project: IntegrationProject, system_id: int):
    """Authenticate and fetch one record with the settings in the form (saved or not)."""
    system = _system(project, system_id)
    endpoint = endpoint_of(system)
    form = EndpointForm(request.POST, request.FILES, system=system, endpoint=endpoint)
    outcome, recorded = None, False
    if form.is_valid():
        try:
            outcome = test_connector(system, form.connector())
        except ConnectorError as exc:
            outcome = test_connector(system, None, exc.message)
        # Only a test of exactly the saved settings says anything about them.
        if recorded := _unchanged(form, endpoint):
            record_test(endpoint, outcome)  # type: ignore[arg-type]
    if request.htmx:
        ctx = {"outcome": outcome, "form": form, "system": system, "recorded": recorded}
        html = render_to_string(f"{PAGE}#test-result", ctx, request=request)
        if recorded:  # the "tested OK / failed" badge at the top follows, out of band
            html += render_to_string(
                f"{PAGE}#endpoint-status", {"endpoint": endpoint, "oob": True}, request=request
            )
        return HttpResponse(html)
    return _page(request, project, system, form, outcome, recorded)
