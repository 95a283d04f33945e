"""The header's notification bell: the unread count in one query, with the page."""

from django import template

from planner.notify.service import unread_count

register = template.Library()


@register.inclusion_tag("collaboration/_bell.html", takes_context=True)
def notification_bell(context) -> dict:
    user = context["request"].user
    return {"unread": unread_count(user) if user.is_authenticated else 0}
