"""Mapping spreadsheets in and out of the database, shared by the editor and the API."""

from django.db import transaction
from django.db.models import Max
from django.http import HttpResponse
from django.utils.text import slugify

from planner.mapping.spreadsheet import export_csv, export_xlsx
from planner.models import Connection, FieldMapping

MAX_UPLOAD = 1_500_000  # the file travels once more in the editor's confirm form
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def export_response(connection: Connection, fmt: str) -> HttpResponse:
    """The connection's mapping as a CSV or XLSX download (fmt is one of CONTENT_TYPES)."""
    rows = list(FieldMapping.objects.filter(connection=connection))
    title = f"{connection.source} to {connection.target}"
    body = export_xlsx(rows, title=title) if fmt == "xlsx" else export_csv(rows)
    name = slugify(f"{connection.project.name} {title} mapping")
    response = HttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
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
