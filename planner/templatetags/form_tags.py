"""`{% form_field f wide %}` and `{% form_fields form %}`: a form field with its label, help
and errors, the markup every form of the app uses (templates/_field.html is this tag).

Written in Python for the same reason as the table rows (`row_tags`): a step page of a big
project draws about thirty fields in its add forms, and the template's nodes per field (its
conditions, the label twice, the errors loop) cost more than the field's input itself.
"""

from django import template
from django.utils.safestring import SafeString, mark_safe

from planner.web.markup import text

register = template.Library()


def field_html(f, wide=False) -> str:
    """One field: a labelled input, or a group of boxes in a fieldset with a legend."""
    if f.widget_type == "checkboxselectmultiple":  # one label a box, a legend for the group
        outer, title = "fieldset", "legend"
    else:
        outer, title = "label", "span"
    label = text(f.label)
    errors = f.errors
    css = "field" + (" has-error" if errors else "") + (" wide" if wide else "")
    required = " *" if f.field.required else ""
    help_text = f.help_text
    helps = f'<small class="help">{text(help_text)}</small>' if help_text else ""
    shown = "".join([f'<span class="error">{label}: {text(e)}</span>' for e in errors])
    return (
        f'\n<{outer} class="{css}">\n  <{title}>{label}{required}</{title}>\n  {f}\n'
        f"  {helps}\n  {shown}\n</{outer}>\n"
    )


@register.simple_tag
def form_field(f, wide=False) -> SafeString:
    return mark_safe(field_html(f, wide))  # noqa: S308 - field_html escapes what it writes


@register.simple_tag(takes_context=True)
def form_fields(context, form) -> SafeString:
    """Every visible field of `form`, as `{% include "_field.html" %}` in a loop writes them
    (each followed by the line end that ends _field.html)."""
    wide = context.get("wide")
    return mark_safe(  # noqa: S308 - field_html escapes what it writes
        "".join([field_html(f, wide) + "\n" for f in form.visible_fields()])
    )
