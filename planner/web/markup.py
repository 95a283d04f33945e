"""HTML written in Python where the template engine's cost per value dominated a page.

`text(value)` writes a value exactly as `{{ value }}` does in a page (autoescape on, the
project's localisation and time zone). The rows of a big step page and the fields of its forms
write a few thousand values; strings, by far the most common, skip the engine's general path
(time zone, localisation and lazy-string checks, each a function call) and are escaped
directly, as `django.utils.html.escape` would escape them.
"""

from html import escape as _escape

from django.conf import settings
from django.template.base import render_value_in_context
from django.template.context import Context
from django.utils.safestring import SafeString

# What `{{ value }}` uses to turn a value into text: autoescape on, the project's l10n and
# time zone settings (None = the settings' defaults), as in every page's context.
_PAGE = Context(autoescape=True)


def _escaped(value: str) -> str:
    """`html.escape(value)`; most values (names, numbers, URLs) have nothing to escape, and
    looking for the five characters first is cheaper than five replacements."""
    if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:
        return _escape(value)
    return value


def text(value) -> str:
    """`value` as `{{ value }}` writes it."""
    kind = type(value)
    if kind is str:
        return _escaped(value)
    if kind is SafeString:
        return value
    if kind is int and not settings.USE_THOUSAND_SEPARATOR:
        return str(value)  # what localisation writes for a whole number without grouping
    return render_value_in_context(value, _PAGE)


def attrs(values: dict) -> str:
    """An element's attributes as django/forms/widgets/attrs.html writes them: True gives a
    bare name, False leaves the attribute out, anything else is written with "%s"."""
    if not values:
        return ""
    out = []
    for name, value in values.items():
        if value is True:
            out.append(f" {text(name)}")
        elif value is not False:
            out.append(f' {text(name)}="{text(value if isinstance(value, str) else f"{value}")}"')
    return "".join(out)
