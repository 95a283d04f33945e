"""Step 2: import a mapping spreadsheet (preview, column matching, all-or-nothing) and export."""

import base64
import binascii

from django.contrib import messages
from django.db import transaction
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify

from ..mapping.spreadsheet import (
    COLUMNS,
    ImportProblem,
    SpreadsheetError,
    export_csv,
    export_xlsx,
    match_columns,
    read_sheet,
    validate_rows,
)
from ..models import FieldMapping
from ..permissions import project_access
from .common import project_context
from .mapping import _connection, editor_url

MAX_UPLOAD = 1_500_000  # the file travels once more in the confirm form; see settings
PREVIEW_ROWS = 8
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@project_access("view")
def mapping_export(request: HttpRequest, project, connection_id: int, fmt: str) -> HttpResponse:
    connection = _connection(project, connection_id)
    if fmt not in CONTENT_TYPES:
        raise Http404("Export as csv or xlsx.")
    rows = list(FieldMapping.objects.filter(connection=connection))
    if fmt == "xlsx":
        body = export_xlsx(rows, title=f"{connection.source} to {connection.target}")
    else:
        body = export_csv(rows)
    name = slugify(f"{project.name} {connection.source} to {connection.target} mapping")
    response = HttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


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
        sheet = read_sheet(data, filename)
    except SpreadsheetError as exc:
        return _page(request, project, connection, problems=exc.problems)
    encoded = base64.b64encode(data).decode()
    if request.POST.get("step") != "confirm":
        columns = match_columns(sheet.headers)
        return _page(
            request, project, connection, sheet=sheet, columns=columns, encoded=encoded,
            filename=filename, preview=sheet.rows[:PREVIEW_ROWS], mode="append",
        )  # fmt: skip
    columns = {i: (request.POST.get(f"col_{i}") or None) for i in range(len(sheet.headers))}
    chosen = [f for f in columns.values() if f]
    duplicates = {f for f in chosen if chosen.count(f) > 1}
    replace = request.POST.get("mode") == "replace"
    existing = {} if replace else _existing_targets(connection)
    try:
        if duplicates:
            raise SpreadsheetError([
                ImportProblem(None, COLUMNS[f][0], "Two columns are matched to this field.")
                for f in sorted(duplicates)
            ])  # fmt: skip
        unknown = {f for f in chosen if f not in COLUMNS}
        if unknown:
            raise SpreadsheetError([ImportProblem(None, "", "Unknown target field choice.")])
        rows = validate_rows(sheet, columns, existing)
    except SpreadsheetError as exc:
        return _page(
            request, project, connection, sheet=sheet, columns=columns, encoded=encoded,
            filename=filename, preview=sheet.rows[:PREVIEW_ROWS], problems=exc.problems,
            mode="replace" if replace else "append",
        )  # fmt: skip
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
            raise SpreadsheetError(
                [
                    ImportProblem(
                        None,
                        "",
                        "Files are limited to 1.5 MB (a 5,000-row mapping is far smaller).",
                    )
                ]
            )
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


def _existing_targets(connection) -> dict[str, str]:
    return {
        target.lower(): f"already in the mapping from '{source}'"
        for source, target in FieldMapping.objects.filter(connection=connection).values_list(
            "source_field", "target_field"
        )
    }


@transaction.atomic
def import_rows(connection, rows: list[dict], *, replace: bool) -> int:
    """Save imported rows in one transaction: all of them or none."""
    if replace:
        for old in FieldMapping.objects.filter(connection=connection):
            old.delete()  # one by one, so each deletion is in the history
        start = 0
    else:
        start = (
            FieldMapping.objects.filter(connection=connection).aggregate(Max("position"))[
                "position__max"
            ]
            or 0
        )
    for offset, row in enumerate(rows, start=1):
        FieldMapping.objects.create(
            project_id=connection.project_id, connection=connection, position=start + offset, **row
        )
    return len(rows)
