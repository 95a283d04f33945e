"""Mapping spreadsheets in and out of the database, shared by the editor and the API."""

from dataclasses import dataclass, field, replace

from django import forms
from django.conf import settings
from django.db import connection as db
from django.db import transaction
from django.db.models import Max
from django.http import HttpResponse
from django.utils import timezone
from django.utils.text import slugify
from psycopg import sql
from simple_history.utils import bulk_create_with_history

from planner.checklist import aftercare
from planner.filesafety import FileLimits, configured_limits
from planner.mapping.checks import rule_errors
from planner.mapping.rules import RuleError
from planner.mapping.spreadsheet import (
    IMPORT_LIMITS,
    Checked,
    CheckedRow,
    ImportProblem,
    Sheet,
    SpreadsheetError,
    UnknownValue,
    check_rows,
    column_header,
    duplicate_problems,
    export_csv,
    export_xlsx,
    problem_order,
    read_sheet,
    rule_message,
)
from planner.mapping.vocabulary import MEANINGS, interpret
from planner.models import Connection, FieldMapping, System, ValueMeaning
from planner.steps.mapping.forms import FieldMappingForm

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


# Rows pasted from Excel or Google Sheets arrive as tab-separated text under this name, so a
# paste goes through the very same preview as a file.
PASTED_NAME = "pasted.tsv"


def read_upload(data: bytes, filename: str) -> Sheet:
    """An uploaded mapping spreadsheet, refused whole if it breaks a limit (SpreadsheetError)."""
    if len(data) > MAX_UPLOAD:
        raise SpreadsheetError([ImportProblem(None, "", TOO_BIG)])
    return read_sheet(data, filename, import_limits(), headerless=filename == PASTED_NAME)


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
def import_rows(connection: Connection, rows: list[dict], *, replace: bool, user=None) -> int:
    """Save imported rows in one transaction: all of them or none."""
    if replace:
        for old in FieldMapping.objects.filter(connection=connection):
            old.delete()  # one by one, so each deletion is in the history
        start = 0
    else:
        last = FieldMapping.objects.filter(connection=connection).aggregate(Max("position"))
        start = last["position__max"] or 0
    if user is not None and not user.is_authenticated:
        user = None
    new = [
        FieldMapping(
            project_id=connection.project_id, connection=connection, position=start + offset, **row
        )
        for offset, row in enumerate(rows, start=1)
    ]
    if db.vendor == "postgresql":
        _copy_with_history(new, user)
    else:
        bulk_create_with_history(new, FieldMapping, batch_size=1000, default_user=user)
    return len(rows)


def _copy_with_history(new: list[FieldMapping], user) -> None:
    """Save rows and their history ('+', by `user`) with PostgreSQL's COPY: the ORM's bulk
    insert spends seconds per 10,000 rows preparing values, COPY a fraction of one."""
    table = FieldMapping._meta.db_table
    history = FieldMapping.history.model
    now = timezone.now()
    fields = [f for f in FieldMapping._meta.concrete_fields if not f.primary_key]
    names = ["id"] + [f.column for f in fields]
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, len(new)],
        )
        for obj, (pk,) in zip(new, cursor.fetchall(), strict=True):
            obj.pk = pk
            obj.updated_at = now
        values = [[obj.pk] + [getattr(obj, f.attname) for f in fields] for obj in new]
        extra = ["history_date", "history_change_reason", "history_type", "history_user_id"]
        stamp = [now, None, "+", user.pk if user else None]
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        for name, columns, data in (
            (table, names, values),
            (history._meta.db_table, names + extra, [v + stamp for v in values]),
        ):
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            with raw.copy(statement) as copy:
                for row in data:
                    copy.write_row(row)


def system_key(name: str) -> str:
    """A system name as routing compares it: case and every space ignored."""
    return "".join(name.split()).lower()


@dataclass
class Route:
    """The rows of the file that go to one connection (None: a pair the project lacks)."""

    source: str
    target: str
    connection: Connection | None
    rows: list[CheckedRow] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.source} → {self.target}"

    @property
    def row_numbers(self) -> str:
        numbers = [r.number for r in self.rows]
        shown = ", ".join(str(n) for n in numbers[:8])
        return shown + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")


@dataclass
class ImportPlan:
    """What confirming would do, and everything that stops it; built identically for the web
    page, a paste and the API."""

    routes: list[Route]
    problems: list[ImportProblem]
    unknown: list[UnknownValue]
    ignored: list[str]  # headers of columns that are not imported

    @property
    def new_pairs(self) -> list[Route]:
        return [r for r in self.routes if r.connection is None]

    @property
    def row_count(self) -> int:
        return sum(len(r.rows) for r in self.routes)


def stored_meanings(project) -> dict[tuple[str, str], str]:
    return {(m.field, m.value): m.meaning for m in ValueMeaning.objects.filter(project=project)}


def chosen_meaning_problem(field_name: str, meaning: str) -> str | None:
    """Why a chosen meaning cannot be used, or None."""
    if field_name not in MEANINGS:
        return f"'{field_name}' is not a column whose values are matched."
    if interpret(field_name, meaning) is None:
        return f"'{meaning}' is not one of: {', '.join(MEANINGS[field_name])}."
    return None


def plan_import(
    connection: Connection,
    sheet: Sheet,
    columns: dict[int, str | None],
    *,
    replace: bool,
    meanings: dict[tuple[str, str], str] | None = None,
) -> ImportPlan:
    """Check the sheet exactly as confirming would, without writing anything.

    meanings: choices made in this preview, on top of the project's remembered ones.
    """
    project = connection.project
    known = stored_meanings(project) | (meanings or {})
    checked = check_rows(sheet, columns, known)
    ignored = [h or f"column {i + 1}" for i, h in enumerate(sheet.headers) if not columns.get(i)]
    if not checked.rows and checked.problems:
        return ImportPlan([], checked.problems, [], ignored)
    problems = list(checked.problems)
    routes = _routes(connection, checked, problems)
    for route in routes:
        existing = {}
        if route.connection is not None and not replace:
            existing = existing_targets(route.connection)
        problems += duplicate_problems(route.rows, existing)
    problems += _form_problems(project, checked.rows, problems)
    return ImportPlan(routes, sorted(problems, key=problem_order), checked.unknown, ignored)


def _routes(connection: Connection, checked: Checked, problems: list) -> list[Route]:
    here = Route(connection.source.name, connection.target.name, connection)
    pairs: dict[tuple[str, str], Route] = {(system_key(here.source), system_key(here.target)): here}
    others = (
        Connection.objects.filter(project_id=connection.project_id)
        .exclude(pk=connection.pk)
        .select_related("source", "target")
    )
    for other in others:
        key = (system_key(other.source.name), system_key(other.target.name))
        pairs.setdefault(key, Route(other.source.name, other.target.name, other))
    for row in checked.rows:
        source, target = row.systems
        if not source and not target:
            here.rows.append(row)
            continue
        if not source or not target:
            missing = "source_system" if not source else "target_system"
            header = row.headers.get(missing, column_header(missing))
            problems.append(
                ImportProblem(
                    row.number,
                    header,
                    "This cell is empty; give both systems, or neither for this connection.",
                )
            )
            continue
        key = (system_key(source), system_key(target))
        if key[0] == key[1]:
            header = row.headers.get("target_system", column_header("target_system"))
            message = f"'{target}' is also the source system; a system cannot feed itself."
            problems.append(ImportProblem(row.number, header, message))
            continue
        route = pairs.get(key)
        if route is None:
            route = pairs[key] = Route(source, target, None)
        route.rows.append(row)
    return [r for r in pairs.values() if r.rows or r is here]


# The form fields that differ on nearly every row and that nothing else in the form looks at.
_PER_ROW = ("source_field", "target_field", "notes")


def _form_problems(project, rows: list[CheckedRow], found: list[ImportProblem]) -> list:
    """Every row through the editor's own form, so what the editor refuses is refused here.

    Rows that differ only in their names and notes get the same verdict from the form, so the
    form runs once per distinct rest of the row (a 10,000-row sheet has a few hundred), and the
    names and notes go through the form's own fields for every row. The form's duplicate check
    needs the row's connection and runs per row; the plan checks duplicates for all rows at
    once instead, so the form gets a row without a connection.
    """
    already = {(p.row, p.column) for p in found}
    verdicts: dict[tuple, dict[str, str]] = {}
    fields = FieldMappingForm.base_fields
    # A field that accepts any text (notes) cannot refuse a row: not worth a call per row.
    checked_per_row = [n for n in _PER_ROW if fields[n].required or fields[n].max_length]
    rest = [n for n in FieldMappingForm.Meta.fields if n not in _PER_ROW]
    problems = []
    for row in rows:
        values = row.values
        key = tuple(values.get(n) for n in rest)
        errors = verdicts.get(key)
        if errors is None:
            data = _form_data(values) | {"source_field": "f", "target_field": "f", "notes": ""}
            form = FieldMappingForm(data=data, project=project)
            form.instance.project = project
            form.is_valid()
            errors = verdicts[key] = {n: e[0] for n, e in form.errors.items() if n not in _PER_ROW}
        for name in checked_per_row:
            try:
                fields[name].clean(values.get(name) or "")
            except forms.ValidationError as exc:
                errors = errors | {name: exc.messages[0]}
        for name, message in errors.items():
            header = row.headers.get(name, column_header(name)) if name != "__all__" else ""
            if (row.number, header) in already:
                continue  # the importer already said what is wrong with this cell
            if name == "rule":
                located = rule_errors(row.values["rule"].strip(), row.values["target_type"])
                message = _located(row.values["rule"], located[0]) if located else message
            problems.append(ImportProblem(row.number, header, message))
    return problems


def _located(cell: str, error: RuleError) -> str:
    """The form checks the trimmed rule; the message counts characters in the cell."""
    shift = len(cell) - len(cell.lstrip())
    return rule_message(RuleError(error.message, error.position + shift, error.length))


def _form_data(values: dict) -> dict:
    data = {}
    for name in FieldMappingForm.Meta.fields:
        value = values.get(name)
        if name == "required":
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else str(value)
    return data


@transaction.atomic
def apply_import(
    connection: Connection,
    plan: ImportPlan,
    *,
    replace: bool,
    create_connections: bool,
    remember: dict[tuple[str, str], str],
    user=None,
) -> list[tuple[Connection, int, bool]]:
    """Save a clean plan: (connection, rows imported, created now) per connection."""
    if plan.problems or plan.unknown:
        raise SpreadsheetError(plan.problems + [u.problem() for u in plan.unknown])
    if plan.new_pairs and not create_connections:
        raise SpreadsheetError(
            [
                ImportProblem(
                    None,
                    "",
                    f"No connection {r.label} in this project (rows {r.row_numbers}); choose "
                    "to create it, or correct the Source System / Target System cells.",
                )
                for r in plan.new_pairs
            ]
        )
    project = connection.project
    for (field_name, key), meaning in remember.items():
        ValueMeaning.objects.update_or_create(
            project=project, field=field_name, value=key, defaults={"meaning": meaning}
        )
    done = []
    for route in plan.routes:
        created = route.connection is None
        target = route.connection or _create_connection(project, route)
        count = import_rows(target, [r.values for r in route.rows], replace=replace, user=user)
        aftercare.record_mapping_import(project, target, count, replace, user)
        done.append((target, count, created))
    return done


def _create_connection(project, route: Route) -> Connection:
    systems = {system_key(s.name): s for s in System.objects.filter(project=project)}

    def system(name: str) -> System:
        found = systems.get(system_key(name))
        if found is None:
            found = systems[system_key(name)] = System.objects.create(project=project, name=name)
        return found

    return Connection.objects.create(
        project=project, source=system(route.source), target=system(route.target)
    )
