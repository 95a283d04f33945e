"""Inline add / edit / delete of the rows of a project's tables (htmx, and plain forms).

One set of views serves every table (criteria, data elements, systems, connections, test
cases, triggers, rollback steps, monitors, incidents, mapping rows). Each table is a `RowKind`
defined next to its page; the URL conf hands the kind to these views. With htmx a view
answers with the fragment to swap in; without JavaScript it redirects back to the page
holding the table (or shows a plain edit page when the input needs fixing).
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.db import models, transaction
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST

from planner.checklist import links
from planner.checklist.evidence import Evidence
from planner.checklist.registry import STEPS_BY_NUMBER
from planner.models import IntegrationProject
from planner.models.base import window_words
from planner.web.common import htmx_fragment, project_context
from planner.web.concurrency import StaleEdit, keep_input_after_conflict, save_versioned
from planner.web.forms import ProjectScopedForm
from planner.web.permissions import can, project_access

STEP_HEADER = "planner/step.html#step-header"
PK = object()  # marks the URL kwarg that takes the row's pk in RowKind.extra_urls


@dataclass(frozen=True)
class RowKind:
    name: str
    label: str
    model: type[models.Model]
    form_class: type[ModelForm]
    headers: tuple[str, ...]
    cells: Callable[[models.Model], list[str]]
    rows: Callable[[Evidence], list]
    # (project, obj=None) -> the page holding the table; by default the step page of `step`
    page: Callable[..., str] | None = None
    warning: Callable[[models.Model], str] = lambda obj: ""
    delete_note: str = ""
    delete_refreshes_page: bool = False  # deleting it removes rows of other tables too
    step: int | None = None  # the step page the table lives on, refreshed after an edit
    also: tuple[str, ...] = ()  # partials to refresh out of band after an edit
    extend: Callable[[dict, models.Model], None] | None = None  # context for `also`
    template: str = "planner/rows.html"  # with partials "row" and "edit-row"
    # more per-row URLs for the template: (context key, url name, extra url kwargs)
    extra_urls: tuple[tuple[str, str, dict], ...] = ()
    # Called in the saving transaction: records that follow this one (a criterion's monitors).
    after_save: Callable[[models.Model], None] | None = None
    # Called in the deleting transaction, after the delete (its history row exists by then):
    # what the deleted record leaves behind (beat entries, changelog entries).
    after_delete: Callable[[models.Model], None] | None = None

    def save(self, obj: models.Model, expected_version: int | None) -> None:
        with transaction.atomic():
            save_versioned(obj, expected_version)
            if self.after_save is not None:
                self.after_save(obj)

    def fragment(self, request, project, html: str, obj=None) -> HttpResponse:
        extend = (lambda ctx: self.extend(ctx, obj)) if self.extend else None
        return htmx_fragment(request, project, html, step=self.step, also=self.also, extend=extend)

    def page_url(self, project: IntegrationProject, obj=None) -> str:
        if self.page is not None:
            return self.page(project, obj)
        return STEPS_BY_NUMBER[self.step].url(project.pk)

    def url(self, action: str, project: IntegrationProject, pk: int | None = None) -> str:
        ids = (project.pk,) if pk is None else (project.pk, pk)
        return links.url(f"planner:{self.name}_{action}", *ids)


def number_text(value) -> str:
    return "" if value is None else f"{value:,}"


def decimal_text(value) -> str:
    return "" if value is None else f"{value.normalize():f}"


def threshold_text(obj) -> str:
    """'> 5 %' from a record with comparator, threshold and unit (triggers, monitors)."""
    if obj.threshold is None:
        return ""
    return f"{obj.get_comparator_display()} {decimal_text(obj.threshold)} {obj.unit}".strip()


def window_text(obj) -> str:
    return window_words(obj.window_value, obj.window_unit) if obj.window_value else ""


_PLACEHOLDER = "987654321"


def row_urls(kind: RowKind, project: IntegrationProject) -> Callable[[int], dict]:
    """Reverse a table's row URLs once, then fill in each row's pk.

    reverse() per row dominated the render time of 100-row tables.
    """
    templates = {
        f"{action}_url": kind.url(action, project, int(_PLACEHOLDER)).rpartition(_PLACEHOLDER)
        for action in ("show", "edit", "delete")
    }
    for key, name, kwargs in kind.extra_urls:
        # the row's pk goes in "pk" unless the URL names it otherwise (a value of PK)
        named = {k: int(_PLACEHOLDER) if v is PK else v for k, v in kwargs.items()}
        if PK not in kwargs.values():
            named["pk"] = int(_PLACEHOLDER)
        url = reverse(name, kwargs={"project_id": project.pk, **named})
        templates[key] = url.rpartition(_PLACEHOLDER)
    return lambda pk: {key: f"{head}{pk}{tail}" for key, (head, _, tail) in templates.items()}


def row_item(kind: RowKind, project, obj: models.Model, urls=None) -> dict:
    urls = urls or row_urls(kind, project)
    return {"obj": obj, "cells": kind.cells(obj), "warning": kind.warning(obj), **urls(obj.pk)}


def render_row(request, project, kind: RowKind, obj) -> str:
    """One saved row as the table shows it, for an editor allowed to change it."""
    ctx = _row_context(request, project, kind, obj)
    return render_to_string(f"{kind.template}#row", ctx, request)


def _row_context(request, project, kind: RowKind, obj, form=None, stale=None) -> dict:
    return {
        "project": project,
        "kind": kind,
        "item": row_item(kind, project, obj),
        "form": form,
        "stale": stale,
        "can_edit": True,
    }


def _add_form(kind: RowKind, project, evidence: Evidence) -> ModelForm:
    form = kind.form_class(project=project, prefix=f"add-{kind.name}")
    return form.choices_from(evidence) if isinstance(form, ProjectScopedForm) else form


def table_context(request, project, kind: RowKind, evidence: Evidence, add_form=None) -> dict:
    urls = row_urls(kind, project)
    return {
        "kind": kind,
        "items": [row_item(kind, project, o, urls) for o in kind.rows(evidence)],
        "add_form": add_form or _add_form(kind, project, evidence),
        "add_url": kind.url("add", project),
    }


def render_table(request, project, kind, add_form=None) -> HttpResponse:
    ctx = project_context(request, project)
    ctx["table"] = table_context(request, project, kind, ctx["evidence"], add_form)
    html = render_to_string("planner/rows.html#table", ctx, request=request)
    return kind.fragment(request, project, html)


@project_access("edit")
@require_POST
def row_add(request: HttpRequest, project: IntegrationProject, kind: RowKind) -> HttpResponse:
    rk = kind
    form = rk.form_class(request.POST, request.FILES, project=project, prefix=f"add-{rk.name}")
    if form.is_valid():
        obj = form.save(commit=False)
        rk.save(obj, None)
        if not request.htmx:
            messages.success(request, f"Added {rk.label} '{obj}'.")
    elif not request.htmx:
        return render(request, "planner/row_edit_page.html", _page_ctx(request, project, rk, form))
    if request.htmx:
        return render_table(request, project, rk, None if form.is_valid() else form)
    return _redirect(rk, project)


def _page_ctx(request, project, rk, form, obj=None, stale=None) -> dict:
    ctx = project_context(request, project)
    ctx.update(
        kind=rk,
        form=form,
        obj=obj,
        stale=stale,
        action=rk.url("edit", project, obj.pk) if obj else rk.url("add", project),
        back=rk.page_url(project, obj),
    )
    return ctx


def _redirect(rk: RowKind, project, obj=None) -> HttpResponse:
    return redirect(rk.page_url(project, obj))


@project_access("view", write="edit")
def row_show(request, project, kind: RowKind, pk: int) -> HttpResponse:
    rk = kind
    obj = get_object_or_404(rk.model, project=project, pk=pk)
    ctx = _row_context(request, project, rk, obj)
    ctx["can_edit"] = can(request.membership.role, "edit")
    return render(request, f"{rk.template}#row", ctx)


@project_access("edit")
def row_edit(request: HttpRequest, project, kind: RowKind, pk: int) -> HttpResponse:
    rk = kind
    obj = get_object_or_404(rk.model, project=project, pk=pk)
    prefix = f"{rk.name}-{pk}"
    stale = None
    if request.method == "POST":
        form = rk.form_class(
            request.POST, request.FILES, instance=obj, project=project, prefix=prefix
        )
        if form.is_valid():
            try:
                rk.save(form.save(commit=False), form.cleaned_data["expected_version"])
            except StaleEdit as conflict:
                stale = _stale(form, rk, conflict)
            else:
                if request.htmx:
                    html = render_row(request, project, rk, obj)
                    return rk.fragment(request, project, html, obj)
                messages.success(request, f"Saved {rk.label} '{obj}'.")
                return _redirect(rk, project, obj)
    else:
        form = rk.form_class(instance=obj, project=project, prefix=prefix)
    if request.htmx:
        ctx = _row_context(request, project, rk, obj, form=form, stale=stale)
        return render(request, f"{rk.template}#edit-row", ctx)
    return render(
        request, "planner/row_edit_page.html", _page_ctx(request, project, rk, form, obj, stale)
    )


def _stale(form, rk: RowKind, conflict: StaleEdit) -> dict:
    """Keep the editor's input, point at what changed, and let a second save win knowingly."""
    current = conflict.current
    who = current.history.first().history_user if hasattr(current, "history") else None
    message = (
        f"{(who.username if who else 'Someone')} saved this {rk.label} while you were editing. "
        "Your input is kept below; review their values and save again to keep yours."
    )
    return {"changes": keep_input_after_conflict(form, conflict, message)}


@project_access("edit")
def row_delete(request: HttpRequest, project, kind: RowKind, pk: int) -> HttpResponse:
    """POST deletes. GET is the confirmation page, for browsers without JavaScript (with htmx
    the Delete link asks with hx-confirm and posts here directly)."""
    rk = kind
    obj = get_object_or_404(rk.model, project=project, pk=pk)
    if request.method != "POST":
        ctx = project_context(request, project)
        ctx.update(
            kind=rk, obj=obj, action=rk.url("delete", project, pk), back=rk.page_url(project, obj)
        )
        return render(request, "planner/row_delete_confirm.html", ctx)
    label = str(obj)
    with transaction.atomic():
        pk_before = obj.pk
        obj.delete()
        if rk.after_delete is not None:
            obj.pk = pk_before  # delete() clears it; the hook names what was deleted
            rk.after_delete(obj)
    if request.htmx:
        if rk.delete_refreshes_page:
            response = HttpResponse()
            response["HX-Refresh"] = "true"
            return response
        return rk.fragment(request, project, "", obj)
    messages.success(request, f"Deleted {rk.label} '{label}'.")
    return _redirect(rk, project, obj)
