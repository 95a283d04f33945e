"""Formatting service-level figures in templates (pages and PDFs alike)."""

import math

from django import template

from planner.metrics import slo

register = template.Library()


@register.filter
def slo_pct(share: float | None) -> str:
    """A share (0..1) as a percentage: 0.999 -> '99.9%'."""
    return "—" if share is None else f"{round(100 * share, 4):g}%"


@register.filter
def slo_duration(d) -> str:
    return slo.duration_text(d)


@register.filter
def slo_burn(rate: float | None) -> str:
    if rate is None:
        return "no data"
    return "∞" if math.isinf(rate) else f"{rate:g}×"
