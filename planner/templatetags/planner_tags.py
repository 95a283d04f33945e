"""Template helpers: capability checks, so templates never restate the role table, and the one
way each kind of value is written on pages and in PDFs."""

from decimal import Decimal

from django import template

from planner.checklist import links
from planner.models.base import window_words
from planner.models.people import display_name as _display_name
from planner.web.permissions import can as _can

register = template.Library()


@register.filter
def can(membership, capability: str) -> bool:
    """`{% if membership|can:"sign_off" %}`: the member's role has the capability."""
    return membership is not None and _can(membership.role, capability)


@register.filter
def display_name(user) -> str:
    """`{{ project.owner|display_name }}`: full name, else username (as in the runbook PDF)."""
    return _display_name(user)


@register.filter
def number(value) -> str:
    """A stored number as people write it: '2', '99.9', '10' (never '2.0000' or '1E+1')."""
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        text = f"{value.normalize():f}"
        return "0" if text in ("-0", "") else text
    return str(value)


@register.filter
def window(obj) -> str:
    """A monitor's or criterion's window: '1 day', '30 minutes' ('' when it has none)."""
    if not getattr(obj, "window_value", None):
        return ""
    return window_words(obj.window_value, obj.window_unit)


@register.filter
def sentence(text) -> str:
    """Free text ended by exactly one full stop: people's 'then quarterly.' stays one sentence."""
    text = str(text).strip()
    return text if not text or text.endswith((".", "!", "?", "…")) else f"{text}."


@register.simple_tag
def link(viewname: str, *ids) -> str:
    """`{% link "planner:inventory" project.pk %}`: `{% url %}` for pages named by integer
    ids, each pattern reversed once (`checklist.links`); every project page's navigator
    draws about twenty such links."""
    return links.url(viewname, *ids)
