"""Step 2: import a mapping spreadsheet (preview, column matching, all-or-nothing) and export."""

import base64
import binascii

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from planner.mapping.spreadsheet import (
    COLUMNS,
    ImportProblem,
    SpreadsheetError,
    match_columns,
    validate_rows,
)
from planner.steps.mapping.files import (
    CONTENT_TYPES,
    MAX_UPLOAD,
    TOO_BIG,
    existing_targets,
    export_response,
    import_rows,
    read_upload,
)
from planner.steps.mapping.views import _connection, editor_url
from planner.web.common import project_context
from planner.web.permissions import project_access

PREVIEW_ROWS = 8


@project_access("view")
def mapping_export(request: HttpRequest, project, connection_id: int, fmt: str) -> HttpResponse:
    connection = _connection(project, connection_id)
    if fmt not in CONTENT_TYPES:
        raise Http404("Export as csv or xlsx.")
    try:
        return export_response(connection, fmt)
    except SpreadsheetError as exc:
        messages.error(request, f"The mapping cannot be exported as {fmt.upper()}: {exc}")
        return redirect(editor_url(project.pk, connection.pk))


def _page(request, project, connection, **extra) -> HttpResponse:
    ctx = project_context(request, project)
    ctx.update(
        connection=connection,
        field_choices=[(field, header) for field, (header, _) in COLUMNS.items()],
        **extra,
    )
    return render(request, "planner/mapping_import.html", ctx)


@project_access("edit")
def mapping_import(request: HttpRequest, project, connection_id: int) -> HttpResponse:
    """Upload -> preview with matched columns -> confirm. Nothing is saved until it is clean."""
    connection = _connection(project, connection_id)
    if request.method != "POST":
        return _page(request, project, connection)
    try:
        data, filename = _uploaded(request)
        sheet = read_upload(data, filename)
    except SpreadsheetError as exc:
        return _page(request, project, connection, problems=exc.problems)
    encoded = base64.b64encode(data).decode()

    def preview(columns, **extra) -> HttpResponse:
        return _page(
            request,
            project,
            connection,
            sheet=sheet,
            columns=columns,
            encoded=encoded,
            filename=filename,
            preview=sheet.rows[:PREVIEW_ROWS],
            **extra,
        )

    if request.POST.get("step") != "confirm":
        return preview(match_columns(sheet.headers), mode="append")
    columns = {i: (request.POST.get(f"col_{i}") or None) for i in range(len(sheet.headers))}
    chosen = [f for f in columns.values() if f]
    duplicates = {f for f in chosen if chosen.count(f) > 1}
    replace = request.POST.get("mode") == "replace"
    existing = {} if replace else existing_targets(connection)
    try:
        if duplicates:
            raise SpreadsheetError(
                [
                    ImportProblem(None, COLUMNS[f][0], "Two columns are matched to this field.")
                    for f in sorted(duplicates)
                ]
            )
        unknown = {f for f in chosen if f not in COLUMNS}
        if unknown:
            raise SpreadsheetError([ImportProblem(None, "", "Unknown target field choice.")])
        rows = validate_rows(sheet, columns, existing)
    except SpreadsheetError as exc:
        mode = "replace" if replace else "append"
        return preview(columns, problems=exc.problems, mode=mode)
    count = import_rows(connection, rows, replace=replace)
    messages.success(
        request,
        f"Imported {count} row{'s' if count != 1 else ''} from {filename}"
        + (" (replacing the previous mapping)." if replace else "."),
    )
    return redirect(editor_url(project.pk, connection.pk))


def _uploaded(request) -> tuple[bytes, str]:
    upload = request.FILES.get("file")
    if upload is not None:
        if upload.size > MAX_UPLOAD:
            raise SpreadsheetError([ImportProblem(None, "", TOO_BIG)])
        return upload.read(), upload.name
    encoded = request.POST.get("encoded", "")
    if not encoded:
        raise SpreadsheetError([ImportProblem(None, "", "Choose a CSV or XLSX file to import.")])
    try:
        return base64.b64decode(encoded, validate=True), request.POST.get("filename", "upload")
    except (binascii.Error, ValueError) as exc:
        raise SpreadsheetError(
            [ImportProblem(None, "", "The upload was damaged; choose the file again.")]
        ) from exc
