"""Server-rendered SVG plots of a criterion's service level, for its page, step 6, the
health-review PDF and the runbook PDF (WeasyPrint renders inline SVG).

Each plot carries <title> and <desc>, labelled axes and a text-alternative table of the same
figures. Colours and dashes are SVG presentation attributes, never `style=` (the CSP forbids
inline styles). The data come from planner.metrics.slo in one query whatever the number of
points (`slo.history`): the compliance figures and the points summed per hour over two windows.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from planner.metrics import slo
from planner.models import SliPoint, SuccessCriterion

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 24, 40
INK, GRID, MUTED = "#222222", "#dddddd", "#555555"
COLOURS = {"p50": "#2874a6", "p95": "#b9770e", "p99": "#c0392b"}
SECONDS = {"s": 1, "sec": 1, "seconds": 1, "min": 60, "minutes": 60, "h": 3600, "hours": 3600}


@dataclass
class Plot:
    slug: str
    title: str
    desc: str
    svg: SafeString
    columns: list[str]
    rows: list[list[str]]

    @property
    def rows_html(self) -> SafeString:
        """The table's body rows (the first cell a row header), built here rather than by two
        nested template loops: a month's plots have a few hundred cells."""
        return mark_safe(  # noqa: S308 - every cell is escaped
            "".join(
                "<tr>"
                + "".join(
                    f'<th scope="row">{conditional_escape(cell)}</th>'
                    if i == 0
                    else f"<td>{conditional_escape(cell)}</td>"
                    for i, cell in enumerate(row)
                )
                + "</tr>"
                for row in self.rows
            )
        )


@dataclass
class CriterionPlots:
    criterion: SuccessCriterion
    compliance: slo.Compliance
    plots: list[Plot] = field(default_factory=list)
    late_now: int | None = None
    late_at: datetime | None = None


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    points: list[tuple[datetime, float]]
    dashed: bool = False


def _coords(points, start: datetime, end: datetime, low: float, high: float) -> str:
    """`_x`,`_y` of every point (the same arithmetic, without two calls per point)."""
    span = (end - start).total_seconds() or 1
    width, bottom, height = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM, HEIGHT - TOP - BOTTOM
    scale = (high - low) or 1
    return " ".join(
        f"{round(LEFT + width * (t - start).total_seconds() / span, 1)},"
        f"{round(bottom - height * (min(max(v, low), high) - low) / scale, 1)}"
        for t, v in points
    )


def _x(t: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1
    return round(LEFT + (WIDTH - LEFT - RIGHT) * (t - start).total_seconds() / span, 1)


def _y(v: float, low: float, high: float) -> float:
    v = min(max(v, low), high)
    return round(HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * (v - low) / ((high - low) or 1), 1)


def _axes(start, end, low, high, x_label, y_label, y_format) -> list[str]:
    parts = [
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>',
            LEFT,
            HEIGHT - BOTTOM,
            WIDTH - RIGHT,
            HEIGHT - BOTTOM,
            INK,
        ),
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>',
            LEFT,
            TOP,
            LEFT,
            HEIGHT - BOTTOM,
            INK,
        ),
    ]
    for i in range(5):
        v = low + (high - low) * i / 4
        y = _y(v, low, high)
        parts.append(
            format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>'
                '<text x="{}" y="{}" text-anchor="end" fill="{}">{}</text>',
                LEFT,
                y,
                WIDTH - RIGHT,
                y,
                GRID,
                LEFT - 4,
                y + 3,
                MUTED,
                y_format(v),
            )
        )
    span = end - start
    for i in range(5):
        t = start + span * i / 4
        label = (
            f"{timezone.localtime(t):%d %b %H:%M}"
            if span <= timedelta(days=2)
            else (f"{timezone.localtime(t):%d %b}")
        )
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="middle" fill="{}">{}</text>',
                _x(t, start, end),
                HEIGHT - BOTTOM + 14,
                MUTED,
                label,
            )
        )
    parts.append(
        format_html(
            '<text x="{}" y="{}" text-anchor="middle" fill="{}">{}</text>',
            (LEFT + WIDTH - RIGHT) / 2,
            HEIGHT - 6,
            INK,
            x_label,
        )
    )
    parts.append(
        format_html(
            '<text x="12" y="{}" text-anchor="middle" fill="{}" transform="rotate(-90 12 {})">'
            "{}</text>",
            (TOP + HEIGHT - BOTTOM) / 2,
            INK,
            (TOP + HEIGHT - BOTTOM) / 2,
            y_label,
        )
    )
    return parts


def _frame(slug: str, title: str, desc: str, body: list[str]) -> SafeString:
    head = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="slo-plot" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" role="img" aria-labelledby="{s}-title {s}-desc" '
        'data-testid="plot-{s}" font-family="sans-serif" font-size="10">'
        '<title id="{s}-title">{t}</title><desc id="{s}-desc">{d}</desc>',
        w=WIDTH,
        h=HEIGHT,
        s=slug,
        t=title,
        d=desc,
    )
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308 - every part is escaped


def line_plot(
    slug, title, desc, lines, start, end, low, high, y_label, y_format, x_label="time (UTC)"
) -> SafeString:
    body = _axes(start, end, low, high, x_label, y_label, y_format)
    legend_x = LEFT + 8
    for line in lines:
        if not line.points:
            continue
        coords = _coords(line.points, start, end, low, high)
        body.append(
            format_html(
                '<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5" '
                'stroke-dasharray="{}"/>',
                coords,
                line.colour,
                "6 4" if line.dashed else "none",
            )
        )
        body.append(
            format_html(
                '<rect x="{}" y="6" width="10" height="10" fill="{}"/>'
                '<text x="{}" y="15" fill="{}">{}</text>',
                legend_x,
                line.colour,
                legend_x + 14,
                INK,
                line.label,
            )
        )
        legend_x += 24 + 6 * len(line.label)
    return _frame(slug, title, desc, body)


def bar_plot(slug, title, desc, bars, start, end, y_label, x_label="hour (UTC)") -> SafeString:
    high = max([v for _t, v in bars] + [1])
    body = _axes(start, end, 0, high, x_label, y_label, lambda v: f"{v:,.0f}")
    width = max(2.0, (WIDTH - LEFT - RIGHT) / max(len(bars), 1) - 1)
    for t, v in bars:
        y = _y(v, 0, high)
        body.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>',
                _x(t, start, end),
                y,
                round(width, 1),
                round(HEIGHT - BOTTOM - y, 1),
                COLOURS["p99"],
                f"{timezone.localtime(t):%d %b %H:%M}",
                v,
            )
        )
    return _frame(slug, title, desc, body)


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:g}%"


def _seconds(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v / 60:.1f} min" if v >= 120 else f"{v:.0f} s"


def criterion_plots(criterion: SuccessCriterion, end: datetime | None = None) -> CriterionPlots:
    """Every plot of a criterion's service level over its window ending at `end` (now)."""
    end = end or timezone.now()
    history = slo.history(criterion, end)
    result, hourly, samples, step = (
        history.compliance,
        history.hourly,
        history.samples,
        history.step,
    )
    window = slo.window_of(criterion)
    start = end - window
    out = CriterionPlots(criterion, result)
    if not hourly:
        return out
    slug = f"criterion-{criterion.pk}"
    objective = None if result.objective is None else 100 * result.objective
    observed = [s.compliance_pct for s in samples if s.compliance_pct is not None]
    low = min(observed + ([objective] if objective is not None else []) + [100.0])
    low = max(0.0, float(f"{low - (100 - low) * 0.5 - 0.01:.4g}"))
    name = f"'{criterion.metric}'"
    target_text = "" if objective is None else f" against the objective of {result.objective_text}"
    lines = [
        Line(
            "compliance %",
            "#2874a6",
            [(s.at, s.compliance_pct) for s in samples if s.compliance_pct is not None],
        )
    ]
    if objective is not None:
        lines.append(Line("objective", "#c0392b", [(start, objective), (end, objective)], True))
    table = [
        [f"{timezone.localtime(s.at):%d %b %H:%M}", _pct(s.compliance_pct), _pct(s.budget_left_pct)]
        for s in samples
    ]
    out.plots.append(
        Plot(
            f"{slug}-compliance",
            f"Compliance of {name} over time",
            f"Share of good events over the rolling {slo.duration_text(window)} window, every "
            f"{slo.duration_text(step)}{target_text}; now {_pct(result.attainment_pct)}.",
            line_plot(
                f"{slug}-compliance",
                f"Compliance of {name} over time",
                f"Rolling compliance{target_text}.",
                lines,
                start,
                end,
                low,
                100.0,
                "compliance %",
                lambda v: f"{v:.4g}",
            ),
            ["At", "Compliance", "Error budget left"],
            table,
        )
    )
    if objective is not None:
        left = [(s.at, s.budget_left_pct) for s in samples if s.budget_left_pct is not None]
        floor = min([v for _t, v in left] + [0.0])
        floor = max(-200.0, floor)
        out.plots.append(
            Plot(
                f"{slug}-budget",
                f"Error budget of {name} remaining",
                f"Share of the error budget not yet spent over the rolling window; now "
                f"{_pct(result.budget_left_pct)} (below 0: overspent).",
                line_plot(
                    f"{slug}-budget",
                    f"Error budget of {name} remaining",
                    "Error budget left, % (below 0: overspent).",
                    [
                        Line("budget left %", "#1e8449", left),
                        Line("spent", "#c0392b", [(start, 0.0), (end, 0.0)], True),
                    ],
                    start,
                    end,
                    floor,
                    100.0,
                    "budget left %",
                    lambda v: f"{v:.0f}",
                ),
                ["At", "Compliance", "Error budget left"],
                [],  # the compliance plot's table already lists the budget left
            )
        )
    recent = [b for b in hourly if b.at > start - timedelta(hours=1)]
    lags = {k: [(b.at, getattr(b, f"lag_{k}")) for b in recent] for k in ("p50", "p95", "p99")}
    lags = {k: [(t, v) for t, v in pts if v is not None] for k, pts in lags.items()}
    if any(lags.values()):
        factor = SECONDS.get(criterion.unit.strip().lower())
        target_s = float(criterion.target) * factor if factor and criterion.target else None
        top = max([v for pts in lags.values() for _t, v in pts] + [target_s or 0, 1.0])
        lines = [Line(k, COLOURS[k], [(t, v / 60) for t, v in pts]) for k, pts in lags.items()]
        if target_s is not None:
            lines.append(Line("target", INK, [(start, target_s / 60), (end, target_s / 60)], True))
        out.plots.append(
            Plot(
                f"{slug}-lag",
                f"Propagation lag of {name}",
                "Worst p50, p95 and p99 lag per hour, in minutes"
                + ("" if target_s is None else f", against the target of {target_s / 60:g} min")
                + ".",
                line_plot(
                    f"{slug}-lag",
                    f"Propagation lag of {name}",
                    "Lag percentiles per hour, minutes.",
                    lines,
                    start,
                    end,
                    0.0,
                    top * 1.1 / 60,
                    "lag (minutes)",
                    lambda v: f"{v:.3g}",
                ),
                ["Hour", "p50", "p95", "p99"],
                [
                    [
                        f"{timezone.localtime(b.at):%d %b %H:%M}",
                        _seconds(b.lag_p50),
                        _seconds(b.lag_p95),
                        _seconds(b.lag_p99),
                    ]
                    for b in recent[-48:]
                ],
            )
        )
    late = [(b.at, b.late_now) for b in hourly if b.late_now is not None]
    if late:
        out.late_at, out.late_now = late[-1]
        since = end - timedelta(hours=48)
        bars = [(t, v) for t, v in late if t > since]
        out.plots.append(
            Plot(
                f"{slug}-late",
                f"Late records of {name}",
                f"Records late at each measurement (worst per hour) over the last 48 hours; "
                f"{out.late_now:,} at the latest.",
                bar_plot(
                    f"{slug}-late",
                    f"Late records of {name}",
                    "Late records per hour, last 48 hours.",
                    bars,
                    since,
                    end,
                    "late records",
                ),
                ["Hour", "Late records"],
                [[f"{timezone.localtime(t):%d %b %H:%M}", f"{v:,}"] for t, v in bars],
            )
        )
    return out


def service_levels(criteria, end: datetime | None = None) -> list[CriterionPlots]:
    """The plots of every criterion among `criteria` that has points (step 6, the review
    report and the runbook): one query to find them, then one per criterion."""
    criteria = list(criteria)
    measured = set(
        SliPoint.objects.filter(criterion__in=criteria)
        .order_by()
        .values_list("criterion_id", flat=True)
        .distinct()
    )
    return [criterion_plots(c, end) for c in criteria if c.pk in measured]
