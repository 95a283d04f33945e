"""Table rows written in Python read exactly as the template partial they replace did."""

from datetime import date
from decimal import Decimal

from django.template import engines
from django.urls import get_resolver

from planner.templatetags.row_tags import row_html
from planner.web.rows import RowKind

# The row partial of templates/planner/rows.html as it was before rows were written in Python:
# what every table showed, kept here as the reference the Python rows must match.
TEMPLATE_ROW = """
<tr class="grid-row" id="{{ kind.name }}-{{ item.obj.pk }}">
  {% for cell in item.cells %}{% if forloop.first %}<th scope="row">{{ cell|default:"—" }}</th>{% else %}<td>{{ cell|default:"—" }}</td>{% endif %}{% endfor %}
  <td class="actions">
    {% if item.warning %}<span class="badge warn">{{ item.warning }}</span>{% endif %}
    {% if can_edit %}
    {% if item.settings_url %}<a class="btn small" href="{{ item.settings_url }}" aria-label="Connection settings of {{ item.obj }}">Connection</a>{% endif %}
    <a class="btn small" href="{{ item.edit_url }}" hx-get="{{ item.edit_url }}" hx-target="#{{ kind.name }}-{{ item.obj.pk }}" hx-swap="outerHTML" aria-label="Edit {{ item.obj }}">Edit</a>
    {# Without JavaScript the link opens a confirmation page; with htmx it asks, then posts. #}
    <a class="btn small danger" role="button" href="{{ item.delete_url }}" hx-post="{{ item.delete_url }}" hx-target="#{{ kind.name }}-{{ item.obj.pk }}" hx-swap="outerHTML" hx-confirm="Delete {{ kind.label }} '{{ item.obj }}'? {{ kind.delete_note }}" aria-label="Delete {{ item.obj }}">Delete</a>
    {% endif %}
  </td>
</tr>
"""  # noqa: E501


class Named:
    """A saved record as a row sees it: a primary key and a name."""

    def __init__(self, pk: int, name: str) -> None:
        self.pk, self.name = pk, name

    def __str__(self) -> str:
        return self.name


def every_row_kind() -> list[RowKind]:
    kinds = {}
    for pattern in get_resolver().url_patterns:
        for sub in getattr(pattern, "url_patterns", []):
            for leaf in getattr(sub, "url_patterns", [sub]):
                kind = getattr(leaf, "default_args", {}).get("kind")
                if isinstance(kind, RowKind):
                    kinds[kind.name] = kind
    return list(kinds.values())


def items() -> list[dict]:
    urls = {"show_url": "/p/1/x/7/", "edit_url": "/p/1/x/7/edit/", "delete_url": "/p/1/x/7/d/"}
    hostile = """<script>alert("x")</script> & 'quoted'"""
    return [
        {"obj": Named(7, "plain"), "cells": ["a", "b", "c"], "warning": "", **urls},
        {
            "obj": Named(8, hostile),
            "cells": [hostile, "", None, 0, Decimal("2.50"), date(2026, 3, 4), 12345],
            "warning": hostile,
            "settings_url": "/p/1/systems/8/settings/?a=1&b=2",
            **urls,
        },
        {"obj": Named(1234567, "big pk"), "cells": [], "warning": "No source of truth", **urls},
    ]


def test_every_kind_of_row_reads_as_the_template_wrote_it(db):
    reference = engines["django"].from_string(TEMPLATE_ROW)
    kinds = every_row_kind()
    # The tables of steps 1, 2, 4, 5, 6, 7 and the inventory: systems, connections, criteria...
    assert {"system", "connection", "criterion", "element", "monitor"} <= {k.name for k in kinds}
    for kind in kinds:
        for item in items():
            for can_edit in (True, False):
                expected = reference.render({"kind": kind, "item": item, "can_edit": can_edit})
                assert row_html(kind, item, can_edit) == expected, (kind.name, item, can_edit)


def test_values_are_escaped_and_viewers_get_no_actions(db):
    kind = next(k for k in every_row_kind() if k.name == "system")
    item = items()[1]
    html = row_html(kind, item, can_edit=True)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quoted&#x27;" in html
    assert 'href="/p/1/systems/8/settings/?a=1&amp;b=2"' in html
    assert "<td>—</td>" in html  # empty and missing cells
    viewer = row_html(kind, item, can_edit=False)
    assert "Edit" not in viewer and "Delete" not in viewer and "Connection" not in viewer
    assert 'class="badge warn"' in viewer  # the warning is for everyone


def test_a_table_without_rows_says_so(project, owner_client):
    html = owner_client.get(f"/projects/{project.pk}/steps/1/").content.decode()
    assert '<tr class="empty"><td colspan="5">No success criterion yet.</td></tr>' in html
