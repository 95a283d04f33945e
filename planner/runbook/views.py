"""The runbook page: export (inline for a small project, Celery for a big one), progress,
downloads (permission-checked, never a public media URL) and the HTML preview."""

import json

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.middleware.csp import get_nonce
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify

from planner.checklist.signoff import project_hash, step_hashes
from planner.models import IntegrationProject, RunbookExport
from planner.runbook import service as rb
from planner.web.common import project_context
from planner.web.permissions import project_access

PAGE = "planner/runbook.html"


def _exports(project: IntegrationProject) -> list[RunbookExport]:
    return rb.shown_as_failed(
        RunbookExport.objects.filter(project=project).select_related("created_by")[:20]
    )


@project_access("view")
def runbook(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    ctx = project_context(request, project)
    ctx.update(
        exports=_exports(project),
        current_version=project_hash(step_hashes(project)),
        big=rb.is_big(project),
    )
    return render(request, PAGE, ctx)


def _exports_fragment(request, project, export: RunbookExport) -> HttpResponse:
    """With htmx the export button refreshes the list in place: the new row shows at once (a
    big project's row then polls until done), and a finished small export is downloaded by
    app.js on the `runbook-ready` event, so the page and the list stay in step."""
    ctx = {
        "project": project,
        "exports": _exports(project),
        "current_version": export.version_hash,
    }
    response = render(request, f"{PAGE}#exports-body", ctx)
    if export.status == RunbookExport.Status.DONE:
        url = reverse("planner:export_download", args=[project.pk, export.pk])
        response["HX-Trigger"] = json.dumps({"runbook-ready": {"url": url}})
    return response


@project_access("view")
def runbook_preview(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    # The stylesheets are inline (the PDF needs them so): this response's CSP nonce lets them in.
    context = {**rb.runbook_context(project), "csp_nonce": get_nonce(request)}
    return HttpResponse(rb.render_html(project, preview=True, context=context))


# Exporting reads the project: anyone who may see it may take its runbook away.
@project_access("view")
def runbook_export(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    if request.method != "POST":
        return redirect("planner:runbook", project_id=project.pk)
    rb.expire_stalled(project)  # recorded here, on the write path; pages only show it
    if rb.is_big(project):
        export = rb.queue_export(project, request.user)
        if request.htmx:
            return _exports_fragment(request, project, export)
        if export.status == RunbookExport.Status.FAILED:
            messages.error(request, export.error)
        else:
            messages.info(request, "The runbook is being made; it appears below when ready.")
        return redirect("planner:runbook", project_id=project.pk)
    export = rb.start_export(project, request.user)
    rb.run_export(export.pk)
    export.refresh_from_db()
    if request.htmx:
        return _exports_fragment(request, project, export)
    if export.status == RunbookExport.Status.DONE:
        return redirect("planner:export_download", project_id=project.pk, pk=export.pk)
    messages.error(request, f"The runbook could not be made: {export.error}")
    return redirect("planner:runbook", project_id=project.pk)


@project_access("view")
def export_status(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    """One export's row, polled by htmx while it runs."""
    export = get_object_or_404(RunbookExport, project=project, pk=pk)
    rb.shown_as_failed([export])
    ctx = {"project": project, "export": export, "current_version": None}
    return render(request, f"{PAGE}#export-row", ctx)


@project_access("view")
def export_download(request: HttpRequest, project: IntegrationProject, pk: int):
    export = get_object_or_404(RunbookExport, project=project, pk=pk)
    if export.status != RunbookExport.Status.DONE or not export.file:
        raise Http404("This export has no file (yet).")
    try:
        handle = export.file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The file of this export is missing from storage.") from exc
    # Named for people, not for storage (which may add a suffix to keep files apart).
    name = f"{slugify(project.name)[:60] or 'project'}-runbook-{export.short_hash}.pdf"
    return FileResponse(handle, as_attachment=True, filename=name, content_type="application/pdf")
