"""Lists of a step page that grow with the project's rows, written in Python.

A readiness rule lists every row that fails it (a big project: a hundred criteria), and step 1
links each criterion to its service-level page; as template loops, those lists cost a few
milliseconds a page in template nodes alone (see `row_tags` for the rows themselves).
"""

from django import template
from django.utils.safestring import SafeString, mark_safe

from planner.web.markup import text

register = template.Library()


@register.simple_tag
def finding_items(findings) -> SafeString:
    """The `<li>` of each finding of a rule: a link to where to fix it when it has one."""
    items = []
    for finding in findings:
        href, words = finding.href, text(finding.text)
        items.append(
            f'<li><a href="{text(href)}">{words}</a></li>' if href else f"<li>{words}</li>"
        )
    return mark_safe("".join(items))  # noqa: S308 - every value is escaped


@register.simple_tag
def service_level_links(items) -> SafeString:
    """Each criterion's name, linked to its service-level page; " · " between them."""
    links = [f'<a href="{text(i["service_level_url"])}">{text(i["obj"].metric)}</a>' for i in items]
    return mark_safe(" · ".join(links))  # noqa: S308 - every value is escaped
