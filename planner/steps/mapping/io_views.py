"""Step 2: import a mapping spreadsheet (preview with column and value matching, routing by
system, all-or-nothing) and export. A paste of rows from a spreadsheet takes the same path."""

import base64
import binascii

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from planner.mapping.spreadsheet import (
    COLUMNS,
    ROUTING,
    TRIMMED_NOTE,
    ImportProblem,
    SpreadsheetError,
    match_columns,
)
from planner.mapping.vocabulary import MEANINGS, value_key
from planner.steps.mapping.files import (
    CONTENT_TYPES,
    MAX_UPLOAD,
    PASTED_NAME,
    TOO_BIG,
    apply_import,
    chosen_meaning_problem,
    export_response,
    plan_import,
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
        field_choices=[(f, header) for f, (header, _) in (COLUMNS | ROUTING).items()],
        trimmed_note=TRIMMED_NOTE,
        **extra,
    )
    return render(request, "planner/mapping_import.html", ctx)


@project_access("edit")
def mapping_import(request: HttpRequest, project, connection_id: int) -> HttpResponse:
    """Upload or paste -> preview (columns, values, connections) -> confirm.

    POST fields: `file` (CSV/XLSX) or `pasted` (tab-separated text copied from a spreadsheet,
    with or without its header row); then the preview posts back `encoded`, `filename`,
    `col_<i>`, `mode`, `create_connections`, and per unknown value `value_field`, `value_key`,
    `value_meaning`; `step=confirm` saves. Nothing is saved until the whole file is clean.
    """
    connection = _connection(project, connection_id)
    if request.method != "POST":
        return _page(request, project, connection)
    try:
        data, filename = _uploaded(request)
        sheet = read_upload(data, filename)
    except SpreadsheetError as exc:
        return _page(request, project, connection, problems=exc.problems)
    fresh = "encoded" not in request.POST
    if fresh:
        columns = match_columns(sheet.headers)
    else:
        columns = {i: (request.POST.get(f"col_{i}") or None) for i in range(len(sheet.headers))}
    replace = request.POST.get("mode") == "replace"
    create = request.POST.get("create_connections") == "1"
    meanings, chosen, problems = _posted_meanings(request)
    problems += _column_problems(columns)
    plan = None
    if not problems:
        plan = plan_import(connection, sheet, columns, replace=replace, meanings=meanings)

    def preview(problems) -> HttpResponse:
        return _page(
            request,
            project,
            connection,
            sheet=sheet,
            columns=columns,
            encoded=base64.b64encode(data).decode(),
            filename=filename,
            pasted=filename == PASTED_NAME,
            preview=sheet.rows[:PREVIEW_ROWS],
            plan=plan,
            chosen=chosen,
            meaning_choices=MEANINGS,
            mode="replace" if replace else "append",
            create=create,
            problems=problems,
        )

    if problems or request.POST.get("step") != "confirm":
        return preview(problems or (plan.problems if plan else []))
    try:
        done = apply_import(
            connection,
            plan,
            replace=replace,
            create_connections=create,
            remember=meanings,
            user=request.user,
        )
    except SpreadsheetError as exc:
        return preview(exc.problems)
    total = sum(count for _, count, _ in done)
    where = "; ".join(
        f"{count} into {c}" + (" (new connection)" if created else "") for c, count, created in done
    )
    messages.success(
        request,
        f"Imported {total} row{'s' if total != 1 else ''} from {filename}: {where}"
        + (" (replacing the previous mapping)." if replace else "."),
    )
    return redirect(editor_url(project.pk, connection.pk))


def _posted_meanings(request) -> tuple[dict, dict, list]:
    """The meanings chosen in the value-matching step: (field, key) -> word, the same keyed
    by 'field|key' for the template, and problems for choices that are not offered."""
    fields = request.POST.getlist("value_field")
    keys = request.POST.getlist("value_key")
    words = request.POST.getlist("value_meaning")
    meanings, chosen, problems = {}, {}, []
    for field, key, word in zip(fields, keys, words, strict=False):
        if not word:
            continue
        if problem := chosen_meaning_problem(field, word):
            problems.append(ImportProblem(None, "", f"Meaning of '{key}': {problem}"))
            continue
        meanings[field, value_key(key)] = word
        chosen[f"{field}|{value_key(key)}"] = word
    return meanings, chosen, problems


def _column_problems(columns: dict) -> list[ImportProblem]:
    chosen = [f for f in columns.values() if f]
    problems = [
        ImportProblem(None, (COLUMNS | ROUTING)[f][0], "Two columns are matched to this field.")
        for f in sorted({f for f in chosen if chosen.count(f) > 1 and f in COLUMNS | ROUTING})
    ]
    if any(f not in COLUMNS | ROUTING for f in chosen):
        problems.append(ImportProblem(None, "", "Unknown target field choice."))
    return problems


def _uploaded(request) -> tuple[bytes, str]:
    upload = request.FILES.get("file")
    if upload is not None:
        if upload.size > MAX_UPLOAD:
            raise SpreadsheetError([ImportProblem(None, "", TOO_BIG)])
        return upload.read(), upload.name
    pasted = request.POST.get("pasted", "")
    if pasted.strip():
        return pasted.encode("utf-8"), PASTED_NAME
    encoded = request.POST.get("encoded", "")
    if not encoded:
        raise SpreadsheetError(
            [ImportProblem(None, "", "Choose a CSV or XLSX file, or paste rows, to import.")]
        )
    try:
        return base64.b64decode(encoded, validate=True), request.POST.get("filename", "upload")
    except (binascii.Error, ValueError) as exc:
        raise SpreadsheetError(
            [ImportProblem(None, "", "The upload was damaged; choose the file again.")]
        ) from exc
