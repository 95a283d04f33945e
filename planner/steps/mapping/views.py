"""Step 2: the mapping editor of one connection — inline rows, live rule checks, samples."""

from django.contrib import messages
from django.db import transaction
from django.db.models import F, Max, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from planner.checklist import aftercare
from planner.mapping.checks import duplicate_targets, row_problems
from planner.mapping.rules import TRANSFORMS, check, output_type, parse
from planner.mapping.spreadsheet import COLUMNS
from planner.models import Connection, FieldMapping, IntegrationProject
from planner.steps import freshness, practices
from planner.steps.mapping.forms import FieldMappingForm
from planner.web.common import htmx_fragment, project_context
from planner.web.concurrency import StaleEdit, save_versioned
from planner.web.permissions import project_access
from planner.web.rows import RowKind, render_row, row_item, row_urls

EDITOR = "planner/mapping_editor.html"
ROWS = "planner/mapping_rows.html"


def editor_url(project_id: int, connection_id: int) -> str:
    return reverse("planner:mapping_editor", args=[project_id, connection_id])


# The grid shows one column per field, in the spreadsheet's order and under its headers, so a
# block copied from the grid, an export or the team's sheet lines up column for column.
GRID_FIELDS = tuple(COLUMNS)
GRID_HEADERS = tuple(header for header, _ in COLUMNS.values())
_CHOICES = {
    f.name: {str(k): str(v) for k, v in f.flatchoices}
    for f in FieldMapping._meta.get_fields()
    if f.name in GRID_FIELDS and getattr(f, "choices", None)
}


class Cell(str):
    """One grid cell: the text shown, plus the field it edits and the value stored there."""

    field: str
    value: str


def _cell(field: str, value) -> Cell:
    if field == "required":
        stored, text = ("on", "yes") if value else ("", "")
    elif value is None:
        stored = text = ""
    elif field in _CHOICES:
        stored = str(value)
        text = _CHOICES[field].get(stored, stored) if stored else ""
    else:
        stored = text = str(value)
    cell = Cell(text)
    cell.field, cell.value = field, stored
    return cell


def _cells(m: FieldMapping) -> list[Cell]:
    return [_cell(field, getattr(m, field)) for field in GRID_FIELDS]


def status_context(ctx: dict, connection: Connection) -> None:
    """What the editor's status box shows: rows with problems on this connection."""
    rows = ctx["evidence"].mappings_of(connection.pk)
    duplicates = duplicate_targets(rows)
    problems = []
    for m in rows:
        found = row_problems(m)
        if m.pk in duplicates:
            found.append(f"target field also mapped from {duplicates[m.pk]}")
        if found:
            problems.append((m, found))
    ctx.update(connection=connection, mapping_count=len(rows), problem_rows=problems)


MAPPING = RowKind(
    "mapping",
    "mapping row",
    FieldMapping,
    FieldMappingForm,
    GRID_HEADERS,
    _cells,
    lambda ev: ev.mappings,
    page=lambda p, obj=None: editor_url(p.pk, obj.connection_id),
    warning=lambda m: "; ".join(row_problems(m)),
    step=2,
    also=(f"{EDITOR}#status",),
    extend=lambda ctx, obj: status_context(
        ctx, ctx["evidence"].connections_by_id[obj.connection_id]
    ),
    template=ROWS,
    after_save=lambda m: aftercare.record_mapping_change(m.project, m.pk),
    after_delete=lambda m: aftercare.record_mapping_change(m.project, m.pk),
    extra_urls=(
        ("duplicate_url", "planner:mapping_duplicate", {}),
        ("up_url", "planner:mapping_move", {"direction": "up"}),
        ("down_url", "planner:mapping_move", {"direction": "down"}),
        ("cell_url", "planner:mapping_cell", {}),
        ("comments_url", "planner:mapping_comments", {}),
    ),
)


def _connection(project: IntegrationProject, connection_id: int) -> Connection:
    return get_object_or_404(
        Connection.objects.select_related("source", "target"), project=project, pk=connection_id
    )


def _add_form(project, connection, data=None) -> FieldMappingForm:
    return FieldMappingForm(
        data,
        instance=FieldMapping(connection=connection, project=project),
        project=project,
        prefix="add-mapping",
    )


def _editor_context(request, project, connection, add_form=None) -> dict:
    ctx = project_context(request, project)
    status_context(ctx, connection)
    rows = ctx["evidence"].mappings_of(connection.pk)
    query = request.GET.get("q", "").strip()
    if query:
        needle = query.lower()
        rows = [m for m in rows if any(needle in c.lower() for c in _cells(m))]
    urls = row_urls(MAPPING, project)
    ctx.update(
        kind=MAPPING,
        items=[row_item(MAPPING, project, m, urls) for m in rows],
        add_form=add_form or _add_form(project, connection),
        query=query,
        transforms=TRANSFORMS.values(),
        other_connections=[c for c in ctx["evidence"].connections if c.pk != connection.pk],
        grid_columns=list(zip(GRID_FIELDS, GRID_HEADERS, strict=True)),
        # Every name the importer knows a column by, so a pasted block that starts with its own
        # header row is told apart from bare rows (which get the grid's headers).
        header_names=sorted(
            {name for field, (h, others) in COLUMNS.items() for name in (h, field, *others)}
        ),
        cell_form=FieldMappingForm(project=project, prefix="cell"),
    )
    return ctx


@project_access("view")
def mapping_editor(request: HttpRequest, project, connection_id: int) -> HttpResponse:
    connection = _connection(project, connection_id)
    return render(request, EDITOR, _editor_context(request, project, connection))


@project_access("edit")
@require_POST
def mapping_add(request: HttpRequest, project, connection_id: int) -> HttpResponse:
    connection = _connection(project, connection_id)
    form = _add_form(project, connection, request.POST)
    if form.is_valid():
        mapping = form.save(commit=False)
        last = FieldMapping.objects.filter(connection=connection).aggregate(Max("position"))
        mapping.position = (last["position__max"] or 0) + 1
        with transaction.atomic():
            save_versioned(mapping, None)
            aftercare.record_mapping_change(project, mapping.pk)
        if not request.htmx:
            messages.success(request, f"Added {mapping}.")
            return redirect(editor_url(project.pk, connection.pk))
        html = render_row(request, project, MAPPING, mapping)
        return _with_add_form(request, project, connection, html, _add_form(project, connection))
    if request.htmx:
        return _with_add_form(request, project, connection, "", form)
    ctx = _editor_context(request, project, connection, add_form=form)
    return render(request, EDITOR, ctx)


def _with_add_form(request, project, connection, html: str, form) -> HttpResponse:
    """The new row (appended by htmx) plus a fresh or erroneous add form, out of band."""

    def extend(ctx):
        status_context(ctx, connection)
        ctx.update(add_form=form, kind=MAPPING, oob_form=True)

    return htmx_fragment(
        request,
        project,
        html,
        step=2,
        also=(f"{EDITOR}#add-form", f"{EDITOR}#status"),
        extend=extend,
    )


def _stored_data(mapping: FieldMapping) -> dict[str, str]:
    """The row as the form would post it, so one cell can be validated with all the others."""
    data = {}
    for name in FieldMappingForm.Meta.fields:
        value = getattr(mapping, name)
        if name == "required":
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else str(value)
    return data


def _first_error(form: FieldMappingForm, field: str) -> str:
    """The edited cell's own error first, else the row's, named by its column header."""
    errors = form.errors
    if field in errors:
        return str(errors[field][0])
    name, messages_ = next(iter(errors.items()))
    if name in COLUMNS:
        return f"{COLUMNS[name][0]}: {messages_[0]}"
    return str(messages_[0])


@project_access("edit")
@require_POST
def mapping_cell(request: HttpRequest, project, pk: int) -> HttpResponse:
    """Save one grid cell: the whole row goes through FieldMappingForm, only the cell changes.

    The other fields are validated as stored but never rewritten (a note imported with its
    spaces keeps them), and the save is refused if the row changed since the grid showed it.
    """
    mapping = get_object_or_404(FieldMapping, project=project, pk=pk)
    field = request.POST.get("field", "")
    if field not in FieldMappingForm.Meta.fields:
        return JsonResponse({"message": f"'{field}' is not a column of the mapping."}, status=400)
    data = _stored_data(mapping)
    data[field] = request.POST.get("value", "")
    data["expected_version"] = request.POST.get("expected_version", "")
    form = FieldMappingForm(data, instance=FieldMapping.objects.get(pk=mapping.pk), project=project)
    if not form.is_valid():
        return JsonResponse({"message": _first_error(form, field), "field": field}, status=422)
    setattr(mapping, field, form.cleaned_data[field])
    try:
        with transaction.atomic():
            save_versioned(mapping, form.cleaned_data["expected_version"])
            aftercare.record_mapping_change(project, mapping.pk)
    except StaleEdit as conflict:
        current = conflict.current
        last = current.history.first()
        who = last.history_user.username if last and last.history_user else "Someone"
        return JsonResponse(
            {
                "message": (
                    f"{who} changed this row while you were editing; their values are shown. "
                    "Your input is kept: save again to replace theirs."
                ),
                "row": render_row(request, project, MAPPING, current),
            },
            status=409,
        )
    return MAPPING.fragment(
        request, project, render_row(request, project, MAPPING, mapping), mapping
    )


@project_access("edit")
@require_POST
def mapping_duplicate(request: HttpRequest, project, pk: int) -> HttpResponse:
    original = get_object_or_404(FieldMapping, project=project, pk=pk)
    with transaction.atomic():
        # Make room right after the original, so the copy appears next to it.
        later = FieldMapping.objects.filter(
            connection_id=original.connection_id, position__gt=original.position
        )
        later.update(position=F("position") + 1)
        copy = FieldMapping.objects.get(pk=pk)
        copy.pk = None
        copy.id = None
        copy._state.adding = True
        copy.version = 1
        copy.position = original.position + 1
        copy.target_field = _free_name(original)
        copy.save()
        aftercare.record_mapping_change(project, copy.pk)
    if not request.htmx:
        messages.success(request, f"Duplicated as {copy}; rename its target field.")
        return redirect(editor_url(project.pk, original.connection_id))
    return MAPPING.fragment(request, project, render_row(request, project, MAPPING, copy), copy)


def _free_name(mapping: FieldMapping) -> str:
    taken = set(
        FieldMapping.objects.filter(connection_id=mapping.connection_id).values_list(
            "target_field", flat=True
        )
    )
    n = 1
    while f"{mapping.target_field}_copy{'' if n == 1 else n}" in taken:
        n += 1
    return f"{mapping.target_field}_copy{'' if n == 1 else n}"


@project_access("edit")
@require_POST
def mapping_move(request: HttpRequest, project, pk: int, direction: str) -> HttpResponse:
    if direction not in ("up", "down"):
        raise Http404("Move a row up or down.")
    mapping = get_object_or_404(FieldMapping, project=project, pk=pk)
    siblings = FieldMapping.objects.filter(connection_id=mapping.connection_id)
    if direction == "up":
        neighbour = (
            siblings.filter(
                Q(position__lt=mapping.position) | Q(position=mapping.position, pk__lt=mapping.pk)
            )
            .order_by("-position", "-pk")
            .first()
        )
    else:
        neighbour = (
            siblings.filter(
                Q(position__gt=mapping.position) | Q(position=mapping.position, pk__gt=mapping.pk)
            )
            .order_by("position", "pk")
            .first()
        )
    if neighbour is not None:
        with transaction.atomic():
            mapping.position, neighbour.position = neighbour.position, mapping.position
            mapping.save(update_fields=["position"])
            neighbour.save(update_fields=["position"])
    if not request.htmx:
        return redirect(editor_url(project.pk, mapping.connection_id) + f"#mapping-{pk}")
    response = HttpResponse(status=204)
    if neighbour is not None:
        # The browser moves the row itself (static/js/app.js): no need to re-render 500 rows.
        response["HX-Trigger"] = (
            f'{{"mapping-moved": {{"id": "mapping-{pk}", "other": "mapping-{neighbour.pk}", '
            f'"direction": "{direction}"}}}}'
        )
    return response


@project_access("view")
def rule_check(request: HttpRequest, project, connection_id: int) -> HttpResponse:
    """Live check of a rule as it is typed: the error with the bad token marked."""
    _connection(project, connection_id)
    params = request.GET
    rule = next((v for k, v in params.items() if k.endswith("rule")), "")
    target_type = next((v for k, v in params.items() if k.endswith("target_type")), "")
    errors = check(rule, target_type=target_type or None) if rule.strip() else []
    ctx = {"rule": rule, "errors": errors}
    if errors:
        e = errors[0]
        ctx.update(
            before=rule[: e.position],
            bad=rule[e.position : e.position + max(e.length, 1)] or " ",
            after=rule[e.position + max(e.length, 1) :],
        )
    elif rule.strip():
        ctx["produces"] = output_type(parse(rule)).kind
    return render(request, f"{EDITOR}#rule-check", ctx)


@project_access("view", write="view")
def mapping_try(request: HttpRequest, project, connection_id: int) -> HttpResponse:
    """Run this connection's mapping on pasted or uploaded sample records; changes nothing."""
    # The engine (polars) loads when someone tries a sample, not with the editor.
    from planner.mapping.samples import SampleError, read_sample, runnable, try_mapping

    connection = _connection(project, connection_id)
    ctx = {"connection": connection, "project": project}
    if request.method == "POST":
        upload = request.FILES.get("sample_file")
        try:
            if upload is not None:
                if upload.size > 2_000_000:
                    raise SampleError("Sample files are limited to 2 MB.")
                frame = read_sample(upload.read(), upload.name)
            else:
                frame = read_sample(request.POST.get("sample", ""))
            mappings = list(FieldMapping.objects.filter(connection=connection))
            if not mappings:
                raise SampleError("Add mapping rows first.")
            # Rows the engine cannot run (saved before the form refused them, or imported) are
            # skipped and named with their problem; the others still run.
            compiled, skipped = runnable(mappings)
            if compiled is None:
                raise SampleError(f"No row can run; fix them first: {'; '.join(skipped)}.")
            result = try_mapping(compiled, frame, request.POST.get("key"))
            ctx.update(result=result, skipped=skipped, columns=frame.columns)
        except SampleError as exc:
            ctx["error"] = str(exc)
    template = f"{EDITOR}#try-result" if request.htmx else "planner/mapping_try_page.html"
    if not request.htmx:
        ctx.update(project_context(request, project))
    return render(request, template, ctx)


def step2_page(request, project, ctx: dict, forms: dict) -> None:
    """The step-2 page: every connection of the inventory with its mapping's state."""
    ev = ctx["evidence"]
    summaries = []
    for c in ev.connections:
        rows = ev.mappings_of(c.pk)
        duplicates = duplicate_targets(rows)
        problems = sum(1 for m in rows if row_problems(m) or m.pk in duplicates)
        summaries.append({"connection": c, "rows": len(rows), "problems": problems})
    ctx["mapping_summaries"] = summaries
    practices.step2_tables(request, project, ctx)
    freshness.step2_tables(request, project, ctx)
