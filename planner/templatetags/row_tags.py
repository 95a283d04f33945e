"""`{% table_rows table %}` and `{% table_row item %}`: the rows of every editable table.

Built here rather than in template tags, as the mapping grid's rows are: step 1 of a big
project draws about 250 rows, and the template engine's per-node cost (a variable, a filter,
an `if` per cell and action) made those rows most of the page's time. This is the only place
a row's markup lives: the table on the page, the row an htmx edit returns and the row a
cancelled edit shows all come from `row_html`. Each value is written as `{{ value }}` writes it
(localised, then escaped unless already safe), so rows read exactly as they did.
"""

from django import template
from django.utils.safestring import SafeString, mark_safe

from planner.web.markup import text as _text

register = template.Library()


def _cells(cells) -> str:
    """The first cell heads the row (`th scope=row`); empty cells read "—"."""
    if not cells:
        return ""
    first, *rest = cells
    head = f'<th scope="row">{_text(first or "—")}</th>'
    return head + "".join([f"<td>{_text(cell or '—')}</td>" for cell in rest])


def _kind_text(kind) -> tuple[str, str, str]:
    """What every row of a table repeats: its kind's name, label and delete note, escaped."""
    return _text(kind.name), _text(kind.label), _text(kind.delete_note)


def row_html(kind, item: dict, can_edit: bool, kind_text: tuple | None = None) -> str:
    """One saved row: its cells, its warning, and for editors its edit and delete actions.
    `kind_text` is `_kind_text(kind)`, when the caller writes many rows of one kind."""
    kind_name, kind_label, delete_note = kind_text or _kind_text(kind)
    obj = item["obj"]
    row_id = f"{kind_name}-{_text(obj.pk)}"
    warning = item.get("warning")
    badge = f'<span class="badge warn">{_text(warning)}</span>' if warning else ""
    actions = ""
    if can_edit:
        # `{{ item.obj }}` writes str(obj), escaped: a record is neither a number, a date
        # nor safe HTML.
        name = _text(str(obj))
        settings_url = item.get("settings_url")
        connection = (
            f'<a class="btn small" href="{_text(settings_url)}" '
            f'aria-label="Connection settings of {name}">Connection</a>'
            if settings_url
            else ""
        )
        edit_url, delete_url = _text(item["edit_url"]), _text(item["delete_url"])
        # Without JavaScript the Delete link opens a confirmation page; with htmx it asks,
        # then posts.
        actions = (
            f"\n    {connection}\n"
            f'    <a class="btn small" href="{edit_url}" hx-get="{edit_url}" '
            f'hx-target="#{row_id}" hx-swap="outerHTML" aria-label="Edit {name}">Edit</a>\n    \n'
            f'    <a class="btn small danger" role="button" href="{delete_url}" '
            f'hx-post="{delete_url}" hx-target="#{row_id}" hx-swap="outerHTML" '
            f"hx-confirm=\"Delete {kind_label} '{name}'? {delete_note}\" "
            f'aria-label="Delete {name}">Delete</a>\n    '
        )
    return (
        f'\n<tr class="grid-row" id="{row_id}">\n  {_cells(item["cells"])}\n'
        f'  <td class="actions">\n    {badge}\n    {actions}\n  </td>\n</tr>\n'
    )


@register.simple_tag(takes_context=True)
def table_row(context, item: dict) -> SafeString:
    return mark_safe(  # noqa: S308 - row_html escapes every value it writes
        row_html(context["kind"], item, bool(context.get("can_edit")))
    )


@register.simple_tag(takes_context=True)
def table_rows(context, table: dict) -> SafeString:
    """Every row of a table (`table_context`), or the row saying there is none yet."""
    kind, items = table["kind"], table["items"]
    if not items:
        colspan = len(kind.headers) + 1
        return mark_safe(  # noqa: S308 - the label is escaped
            f'<tr class="empty"><td colspan="{colspan}">No {_text(kind.label)} yet.</td></tr>'
        )
    can_edit = bool(context.get("can_edit"))
    kind_text = _kind_text(kind)
    return mark_safe(  # noqa: S308 - row_html escapes every value it writes
        "".join([row_html(kind, item, can_edit, kind_text) for item in items])
    )
