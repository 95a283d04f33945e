"""Step 6: monitoring (page, form, the monitor table, a monitor per success criterion)."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import get_object_or_404, redirect
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from planner.checklist import delivery as plan
from planner.checklist.registry import STEPS_BY_NUMBER
from planner.models import Comparator, IntegrationProject, Monitor, SuccessCriterion
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
            "comparator",
            "threshold",
            "unit",
            "window_value",
            "window_unit",
            "severity",
            "alert_route",
            "dashboard_url",
            "criterion",
        ]
        widgets = {"threshold": forms.NumberInput(attrs={"step": "any"})}
        help_texts = {"name": "", "alert_route": ""}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["criterion"].queryset = SuccessCriterion.objects.filter(project=self.project)
        self.fields["dashboard_url"].widget.attrs["placeholder"] = "https://…"

    def clean_dashboard_url(self):
        url = self.cleaned_data["dashboard_url"]
        if url and not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("Give an http:// or https:// link.")
        return url

    def clean(self):
        data = super().clean()
        if data.get("kind") == Monitor.Kind.CRITERION and not data.get("criterion"):
            self.add_error("criterion", "Pick the success criterion this monitor watches.")
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
    warning=lambda m: "" if m.is_complete else "Needs threshold, window and route",
    step=6,
    also=(STEP_HEADER, COVERAGE),
    extend=_coverage_context,
)


def page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    ctx["monitors_table"] = table_context(request, project, MONITORS, ev)
    _coverage_context(ctx)
    practices.step6_context(request, project, ctx)


@project_access("edit")
@require_POST
def monitor_from_criterion(request: HttpRequest, project: IntegrationProject, pk: int):
    """One click: a monitor that alerts when a step-1 success criterion is breached."""
    c = get_object_or_404(SuccessCriterion, project=project, pk=pk)
    monitor = Monitor(
        project=project,
        kind=Monitor.Kind.CRITERION,
        name=c.metric,
        # The alert fires when the criterion is broken: the opposite comparison.
        comparator=Comparator(c.comparator).opposite,
        threshold=c.target,
        unit=c.unit,
        window_value=c.window_value,
        window_unit=c.window_unit,
        criterion=c,
    )
    save_versioned(monitor, None)
    if not request.htmx:
        messages.success(request, f"Added a monitor for '{c.metric}': give it an alert route.")
        return redirect(STEPS_BY_NUMBER[6].url(project.pk, f"monitor-{monitor.pk}"))
    return render_table(request, project, MONITORS)
