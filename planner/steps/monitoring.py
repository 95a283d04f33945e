"""Step 6: monitoring (page, form, the monitor table, a monitor per success criterion)."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import get_object_or_404, redirect
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from planner.checklist import delivery as plan
from planner.checklist.registry import STEPS_BY_NUMBER
from planner.metrics import figures as kpis
from planner.metrics import plots
from planner.models import (
    IntegrationProject,
    MetricKey,
    Monitor,
    SuccessCriterion,
    WindowUnit,
)
from planner.steps import practices
from planner.web.concurrency import save_versioned
from planner.web.forms import ProjectScopedForm
from planner.web.permissions import project_access
from planner.web.rows import (
    STEP_HEADER,
    RowKind,
    render_table,
    table_context,
    threshold_text,
    window_text,
)

COVERAGE = "planner/steps/step6.html#coverage"


class MonitorForm(ProjectScopedForm):
    class Meta:
        model = Monitor
        fields = [
            "kind",
            "name",
            "metric_key",
            "comparator",
            "threshold",
            "unit",
            "window_value",
            "window_unit",
            "severity",
            "alert_route",
            "remind_every_minutes",
            "escalate_after_minutes",
            "escalate_to",
            "dashboard_url",
            "criterion",
        ]
        widgets = {"threshold": forms.NumberInput(attrs={"step": "any"})}
        help_texts = {"name": "", "alert_route": ""}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["criterion"].queryset = SuccessCriterion.objects.filter(project=self.project)
        self.fields["dashboard_url"].widget.attrs["placeholder"] = "https://…"
        self._figure_choices()

    def clean_dashboard_url(self):
        url = self.cleaned_data["dashboard_url"]
        if url and not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("Give an http:// or https:// link.")
        return url

    def _figure_choices(self) -> None:
        # Aethon can only alert on what it measures: no "measured outside Aethon" here.
        self.fields["metric_key"].choices = [
            (k, label) for k, label in self.fields["metric_key"].choices if k != MetricKey.EXTERNAL
        ]
        self.fields["metric_key"].help_text = "Empty: the figure of the check (or criterion)."

    def clean(self):
        data = super().clean()
        kind, criterion = data.get("kind"), data.get("criterion")
        if kind == Monitor.Kind.CRITERION and not criterion:
            self.add_error("criterion", "Pick the success criterion this monitor watches.")
        elif kind == Monitor.Kind.CRITERION:
            if not criterion.metric_key or criterion.metric_key == MetricKey.EXTERNAL:
                self.add_error(
                    "criterion", "This criterion is not measured by a figure Aethon computes."
                )
            else:
                # A criterion's monitor alerts on its breach: the same figure and target.
                data["metric_key"] = criterion.metric_key
                data["comparator"] = kpis.breach(criterion.comparator).value
                data["threshold"] = criterion.target
        elif kind and not data.get("metric_key"):
            match = kpis.default_monitor_metric(
                kind, data.get("comparator") or "", data.get("unit") or "", data.get("name") or ""
            )
            if match.key is None:
                self.add_error("metric_key", "Pick the figure this monitor watches.")
            else:
                data["metric_key"] = str(match.key)
        if (key := data.get("metric_key")) and not self.errors:
            data["unit"] = kpis.unit_of(key)
            self.instance.metric_flag = ""
        if (data.get("escalate_after_minutes") is None) != (not data.get("escalate_to")):
            self.add_error("escalate_to", "Escalation needs both a route and the minutes to wait.")
        return data


def _monitor_cells(m: Monitor) -> list[str]:
    link = format_html('<a href="{}" rel="noopener">dashboard</a>', m.dashboard_url)
    return [
        m.get_kind_display(),
        m.name,
        threshold_text(m),
        window_text(m),
        m.get_severity_display(),
        m.alert_route,
        link if m.dashboard_url else "",
        m.criterion.metric if m.criterion_id and m.criterion else "",
    ]


def _monitor_warning(m: Monitor) -> str:
    if m.metric_flag:
        return m.metric_flag
    c = m.criterion if m.criterion_id else None
    follows = c is None or (m.threshold, m.comparator) == (
        c.target,
        kpis.breach(c.comparator).value,
    )
    if m.kind == Monitor.Kind.CRITERION and not follows:
        return "Out of date with its criterion: save the criterion or the monitor again"
    if not m.is_complete:
        return "Needs threshold, window and route"
    return ""


def _coverage_context(ctx: dict, obj=None) -> None:
    ev = ctx["evidence"]
    monitors = plan.plan_of(ev).monitors
    ctx["coverage"] = [(c, [m for m in monitors if m.criterion_id == c.pk]) for c in ev.criteria]


def _criteria_by_id(monitors: list[Monitor], ev) -> None:
    by_id = {c.pk: c for c in ev.criteria}
    for m in monitors:
        # The criteria are already loaded: no query per monitor row.
        if m.criterion_id in by_id:
            m.criterion = by_id[m.criterion_id]


def _monitors(ev) -> list[Monitor]:
    monitors = plan.plan_of(ev).monitors
    _criteria_by_id(monitors, ev)
    return monitors


MONITORS = RowKind(
    "monitor",
    "monitor",
    Monitor,
    MonitorForm,
    ("Check", "What", "Alert when", "Window", "Severity", "Route", "Dashboard", "Criterion"),
    _monitor_cells,
    _monitors,
    warning=lambda m: _monitor_warning(m),
    step=6,
    also=(STEP_HEADER, COVERAGE),
    extend=_coverage_context,
)


def page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    ctx["monitors_table"] = table_context(request, project, MONITORS, ev)
    _coverage_context(ctx)
    ctx["service_levels"] = plots.service_levels(ev.criteria)
    practices.step6_context(request, project, ctx)


ALERT_WINDOW_MINUTES = 15


def _copy_criterion(monitor: Monitor, c: SuccessCriterion) -> bool:
    """Make `monitor` watch `c`: its figure, and the breach of its target. True if it changed."""
    wanted = {
        "name": c.metric[:160],
        "metric_key": c.metric_key,
        "comparator": kpis.breach(c.comparator).value,
        "threshold": c.target,
        "unit": kpis.unit_of(c.metric_key) or c.unit,
    }
    changed = False
    for field, value in wanted.items():
        if getattr(monitor, field) != value:
            setattr(monitor, field, value)
            changed = True
    return changed


def follow_criterion(c: SuccessCriterion) -> list[Monitor]:
    """After a criterion is saved: its monitors follow its figure and target (a new version of
    each, so step 6's sign-off goes stale)."""
    changed = []
    for m in Monitor.objects.select_for_update().filter(criterion=c, kind=Monitor.Kind.CRITERION):
        if _copy_criterion(m, c):
            save_versioned(m, m.version)
            changed.append(m)
    return changed


@project_access("edit")
@require_POST
def monitor_from_criterion(request: HttpRequest, project: IntegrationProject, pk: int):
    """One click: a monitor that alerts when a step-1 success criterion is breached."""
    c = get_object_or_404(SuccessCriterion, project=project, pk=pk)
    if not c.metric_key or c.metric_key == MetricKey.EXTERNAL:
        messages.error(
            request,
            f"'{c.metric}' is not measured by a figure Aethon computes: no monitor can watch it.",
        )
        return redirect(STEPS_BY_NUMBER[1].url(project.pk, f"criterion-{c.pk}"))
    monitor = Monitor(
        project=project,
        kind=Monitor.Kind.CRITERION,
        criterion=c,
        # An alert window, not the criterion's attainment window (often 30 days).
        window_value=ALERT_WINDOW_MINUTES,
        window_unit=WindowUnit.MINUTES,
    )
    _copy_criterion(monitor, c)
    save_versioned(monitor, None)
    if not request.htmx:
        messages.success(request, f"Added a monitor for '{c.metric}': give it an alert route.")
        return redirect(STEPS_BY_NUMBER[6].url(project.pk, f"monitor-{monitor.pk}"))
    return render_table(request, project, MONITORS)
