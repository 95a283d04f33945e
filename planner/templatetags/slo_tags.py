"""Formatting service-level figures in templates (pages and PDFs alike)."""

import math

from django import template

from planner.metrics import slo

register = template.Library()


@register.filter
def slo_duration(d) -> str:
    return slo.duration_text(d)


@register.filter
def slo_burn(rate: float | None) -> str:
    if rate is None:
        return "no data"
    return "∞" if math.isinf(rate) else f"{rate:g}×"
