"""Mapping spreadsheets in and out of the database, shared by the editor and the API."""

from dataclasses import replace

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.http import HttpResponse
from django.utils.text import slugify

from planner.filesafety import FileLimits, configured_limits
from planner.mapping.spreadsheet import (
    IMPORT_LIMITS,
    ImportProblem,
    Sheet,
    SpreadsheetError,
    export_csv,
    export_xlsx,
    read_sheet,
)
from planner.models import Connection, FieldMapping

MAX_UPLOAD = 1_500_000  # the file travels once more in the editor's confirm form
TOO_BIG = "Files are limited to 1.5 MB (a 5,000-row mapping is far smaller)."
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def import_limits() -> FileLimits:
    """The importer's limits: rows and columns from AETHON_MAPPING_IMPORT_LIMITS, the rest as
    for every uploaded file (AETHON_FILE_LIMITS), never more than the importer's own size."""
    shared = configured_limits("AETHON_FILE_LIMITS")
    own = getattr(settings, "AETHON_MAPPING_IMPORT_LIMITS", None) or {}
    rows = int(own.get("max_rows", IMPORT_LIMITS.max_rows))
    columns = int(own.get("max_columns", IMPORT_LIMITS.max_columns))
    return replace(
        shared,
        max_uncompressed_bytes=min(
            shared.max_uncompressed_bytes, IMPORT_LIMITS.max_uncompressed_bytes
        ),
        max_rows=rows,
        max_columns=columns,
        max_cells=rows * columns,
    )


def read_upload(data: bytes, filename: str) -> Sheet:
    """An uploaded mapping spreadsheet, refused whole if it breaks a limit (SpreadsheetError)."""
    if len(data) > MAX_UPLOAD:
        raise SpreadsheetError([ImportProblem(None, "", TOO_BIG)])
    return read_sheet(data, filename, import_limits())


def download_name(text: str, ext: str) -> str:
    """An ASCII file name for Content-Disposition, whatever the project and systems are called."""
    return f"{slugify(text)[:80].strip('-_') or 'mapping'}.{ext}"


def export_response(connection: Connection, fmt: str) -> HttpResponse:
    """The connection's mapping as a CSV or XLSX download (fmt is one of CONTENT_TYPES).

    SpreadsheetError when the mapping does not fit the format (a text too long for XLSX).
    """
    rows = list(FieldMapping.objects.filter(connection=connection))
    title = f"{connection.source} to {connection.target}"
    body = export_xlsx(rows, title=title) if fmt == "xlsx" else export_csv(rows)
    name = download_name(f"{connection.project.name} {title} mapping", fmt)
    response = HttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def existing_targets(connection: Connection) -> dict[str, str]:
    """Target field (lower-case) -> where it is mapped already, to refuse duplicates on append."""
    return {
        target.lower(): f"already in the mapping from '{source}'"
        for source, target in FieldMapping.objects.filter(connection=connection).values_list(
            "source_field", "target_field"
        )
    }


@transaction.atomic
def import_rows(connection: Connection, rows: list[dict], *, replace: bool) -> int:
    """Save imported rows in one transaction: all of them or none."""
    if replace:
        for old in FieldMapping.objects.filter(connection=connection):
            old.delete()  # one by one, so each deletion is in the history
        start = 0
    else:
        last = FieldMapping.objects.filter(connection=connection).aggregate(Max("position"))
        start = last["position__max"] or 0
    for offset, row in enumerate(rows, start=1):
        FieldMapping.objects.create(
            project_id=connection.project_id, connection=connection, position=start + offset, **row
        )
    return len(rows)
