"""Template helpers: capability checks, so templates never restate the role table."""

from django import template

from planner.web.permissions import can as _can

register = template.Library()


@register.filter
def can(membership, capability: str) -> bool:
    """`{% if membership|can:"sign_off" %}`: the member's role has the capability."""
    return membership is not None and _can(membership.role, capability)
