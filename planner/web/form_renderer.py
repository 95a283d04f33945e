"""The form renderer of every form (settings.FORM_RENDERER): Django's widget HTML, written in
Python for the common widgets.

Django renders each widget through a template (an input includes its attributes' template; a
select includes one template per option; a group of checkboxes three per box), each with its
own context: a step page of a big project renders about thirty fields and a few hundred
options, and those templates were a large share of its time. The widgets below are written
here with the same markup, byte for byte (`tests/web/test_form_renderer.py` renders every
widget of every form both ways); any other widget, or one given its own template, is rendered
by Django's templates as before.
"""

from django.forms.renderers import DjangoTemplates

from planner.web.markup import attrs, text

_WIDGETS = "django/forms/widgets/"
# Widgets whose template is only `{% include "django/forms/widgets/input.html" %}`.
_INPUTS = frozenset(
    f"{_WIDGETS}{name}.html"
    for name in (
        "input",
        "text",
        "number",
        "email",
        "url",
        "password",
        "hidden",
        "date",
        "datetime",
        "time",
        "checkbox",
        "color",
        "search",
        "tel",
        "file",
    )
)
_SELECT_OPTION = f"{_WIDGETS}select_option.html"
# The box of a group, and how many line ends its template nesting adds after the label.
_BOX_OPTIONS = {f"{_WIDGETS}checkbox_option.html", f"{_WIDGETS}radio_option.html"}


def _value(value) -> str:
    """`{{ value|stringformat:'s' }}`: "%s" of the value, escaped unless it is safe HTML."""
    return text(value if isinstance(value, str) else f"{value}")


def _input(widget: dict) -> str:
    """django/forms/widgets/input.html"""
    value = widget["value"]
    shown = f' value="{_value(value)}"' if value is not None else ""
    return (
        f'<input type="{text(widget["type"])}" name="{text(widget["name"])}"{shown}'
        f"{attrs(widget['attrs'])}>"
    )


def _textarea(widget: dict) -> str:
    """django/forms/widgets/textarea.html"""
    value = widget["value"]
    return (
        f'<textarea name="{text(widget["name"])}"{attrs(widget["attrs"])}>\n'
        f"{text(value) if value else ''}</textarea>"
    )


def _select(widget: dict) -> str | None:
    """django/forms/widgets/select.html with select_option.html for each option."""
    parts = [f'<select name="{text(widget["name"])}"{attrs(widget["attrs"])}>']
    for group_name, options, _index in widget["optgroups"]:
        if group_name:
            parts.append(f'\n  <optgroup label="{text(group_name)}">')
        for option in options:
            if option["template_name"] != _SELECT_OPTION:
                return None
            parts.append(
                f'\n  <option value="{_value(option["value"])}"{attrs(option["attrs"])}>'
                f"{text(option['label'])}</option>\n"  # the option template's own line end
            )
        if group_name:
            parts.append("\n  </optgroup>")
    parts.append("\n</select>")
    return "".join(parts)


def _box(option: dict) -> str:
    """checkbox_option.html / radio_option.html: input_option.html, which includes input.html;
    each template's own line end stays in the output."""
    box = _input(option) + "\n"
    if option["wrap_label"]:
        box_id = option["attrs"].get("id")
        label_for = f' for="{text(box_id)}"' if box_id else ""
        box = f"<label{label_for}>{box} {text(option['label'])}</label>"
    return box + "\n\n"


def _boxes(widget: dict) -> str | None:
    """django/forms/widgets/multiple_input.html (checkbox_select.html, radio.html)."""
    group_id = widget["attrs"].get("id")
    css_class = widget["attrs"].get("class")
    parts = [
        "<div",
        f' id="{text(group_id)}"' if group_id else "",
        f' class="{text(css_class)}"' if css_class else "",
        ">",
    ]
    for group, options, _index in widget["optgroups"]:
        if group:
            parts.append(f"\n  <div><label>{text(group)}</label>")
        for option in options:
            if option["template_name"] not in _BOX_OPTIONS:
                return None
            parts.append(f"<div>\n    {_box(option)}</div>")
        if group:
            parts.append("\n  </div>")
    parts.append("\n</div>")
    return "".join(parts)


_WRITERS = {
    **dict.fromkeys(_INPUTS, _input),
    f"{_WIDGETS}textarea.html": _textarea,
    f"{_WIDGETS}select.html": _select,
    f"{_WIDGETS}checkbox_select.html": _boxes,
    f"{_WIDGETS}radio.html": _boxes,
}


class FormRenderer(DjangoTemplates):
    """Django's template renderer, with the widgets above written in Python."""

    def render(self, template_name, context, request=None):
        write = _WRITERS.get(template_name)
        html = write(context["widget"]) if write is not None else None
        if html is None:  # another widget, or options with their own template
            return super().render(template_name, context, request)
        return html
