"""The runbook page: export (inline for a small project, Celery for a big one), progress,
downloads (permission-checked, never a public media URL) and the HTML preview."""

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.middleware.csp import get_nonce
from django.shortcuts import get_object_or_404, redirect, render

from planner.checklist.signoff import project_hash, step_hashes
from planner.models import IntegrationProject, RunbookExport
from planner.runbook import service as rb
from planner.web.common import project_context
from planner.web.permissions import project_access

PAGE = "planner/runbook.html"


@project_access("view")
def runbook(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    ctx = project_context(request, project)
    ctx.update(
        exports=rb.shown_as_failed(
            RunbookExport.objects.filter(project=project).select_related("created_by")[:20]
        ),
        current_version=project_hash(step_hashes(project)),
        big=rb.is_big(project),
    )
    return render(request, PAGE, ctx)


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
        if export.status == RunbookExport.Status.FAILED:
            messages.error(request, export.error)
        else:
            messages.info(request, "The runbook is being made; it appears below when ready.")
        return redirect("planner:runbook", project_id=project.pk)
    export = rb.start_export(project, request.user)
    rb.run_export(export.pk)
    export.refresh_from_db()
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
    name = export.file.name.rsplit("/", 1)[-1]
    return FileResponse(handle, as_attachment=True, filename=name, content_type="application/pdf")
