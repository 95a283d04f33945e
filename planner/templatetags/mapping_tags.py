"""`{% mapping_row item %}`: one row of the step-2 mapping grid.

Built here rather than in template tags: a 500-row mapping has 7,500 cells and 2,500 row
actions, and the template engine's per-node cost put the editor far over its 300 ms budget.
This is the only place the row's markup lives (the page and every htmx fragment use it).
"""

from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


def _cells(cells, editable: bool) -> str:
    """The first cell is the row header (`th scope=row`, the source field), the rest `td`s;
    each names the field it edits and the value stored, for static/js/mapping_grid.js."""
    focus = ' tabindex="-1"' if editable else ""
    parts = []
    for i, cell in enumerate(cells):
        open_tag, close_tag = ("td", "td") if i else ('th scope="row"', "th")
        parts.append(
            f'<{open_tag} data-field="{cell.field}" data-value="{escape(cell.value)}"{focus}>'
            f"{escape(cell)}</{close_tag}>"
        )
    return "".join(parts)


def _actions(item: dict, csrf_token: str) -> str:
    pk = item["obj"].pk
    name = escape(str(item["obj"]))
    row = f"#mapping-{pk}"
    delete_url, duplicate_url = escape(item["delete_url"]), escape(item["duplicate_url"])
    up_url, down_url = escape(item["up_url"]), escape(item["down_url"])
    edit_url = escape(item["edit_url"])
    return (
        f'<form method="post" action="{delete_url}">'
        f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(csrf_token)}">'
        f'<a class="btn small" href="{edit_url}" aria-label="Edit {name} in a form">'
        "Edit</a> "
        f'<button class="btn small" formaction="{duplicate_url}" hx-post="{duplicate_url}" '
        f'hx-target="{row}" hx-swap="afterend" aria-label="Duplicate {name}" title="Duplicate">'
        "Copy</button> "
        f'<button class="btn small" formaction="{up_url}" hx-post="{up_url}" hx-swap="none" '
        f'aria-label="Move {name} up" title="Move up">↑</button> '
        f'<button class="btn small" formaction="{down_url}" hx-post="{down_url}" hx-swap="none" '
        f'aria-label="Move {name} down" title="Move down">↓</button> '
        # A link, not a submit: without JavaScript it opens the confirmation page.
        f'<a class="btn small danger" role="button" href="{delete_url}" hx-post="{delete_url}" '
        f'hx-target="{row}" hx-swap="outerHTML" '
        f'hx-confirm="Delete the mapping of &#x27;{name}&#x27;?" '
        f'aria-label="Delete {name}">Delete</a></form>'
    )


@register.simple_tag(takes_context=True)
def mapping_row(context, item: dict) -> SafeString:
    editable = bool(context.get("can_edit"))
    obj = item["obj"]
    classes = "grid-row mapping-row" + (" has-problem" if item["warning"] else "")
    cell_url = f' data-cell-url="{escape(item["cell_url"])}"' if editable else ""
    actions = _actions(item, str(context.get("csrf_token", ""))) if editable else ""
    # The row's comment thread: viewers read it too.
    discuss = (
        f'<a class="btn small" href="{escape(item["comments_url"])}" '
        f'aria-label="Comments on {escape(str(obj))}">Discuss</a>'
        if item.get("comments_url")
        else ""
    )
    warning = (
        f'<span class="badge warn row-warning">{escape(item["warning"])}</span>'
        if item["warning"]
        else ""
    )
    return mark_safe(  # noqa: S308 - every value interpolated above is escaped
        f'<tr class="{classes}" id="mapping-{obj.pk}" data-version="{obj.version}"{cell_url}>'
        f"{_cells(item['cells'], editable)}"
        f'<td class="actions">{actions}{discuss}{warning}</td></tr>'
    )
