"""Freshness on the step pages: the change-time fields per connection (step 2), and each
propagation-lag criterion's measurement page with its "Measure now" button (step 1)."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from planner.metrics import freshness as lag
from planner.models import (
    FreshnessSettings,
    FreshnessState,
    IntegrationProject,
    MetricKey,
    SliPoint,
    SuccessCriterion,
)
from planner.runs import canary, freshness
from planner.runs.freshness_schedule import entry_name, sync_connection
from planner.steps.canary_form import CanaryProbeForm
from planner.steps.practices import ConnectionScopedForm
from planner.web.common import project_context
from planner.web.permissions import project_access
from planner.web.rows import STEP_HEADER, RowKind, table_context

RECENT_POINTS = 20
_FIELD_NAME = forms.RegexField(
    regex=r"^[^\x00-\x1f]{1,120}$", strip=True, error_messages={"invalid": "Give a field name."}
)


class FreshnessSettingsForm(ConnectionScopedForm):
    class Meta:
        model = FreshnessSettings
        fields = [
            "connection",
            "basis",
            "source_time_field",
            "target_time_field",
            "skew_seconds",
            "overlap_seconds",
        ]

    def clean_source_time_field(self):
        return _FIELD_NAME.clean(self.cleaned_data.get("source_time_field", ""))

    def clean_target_time_field(self):
        return _FIELD_NAME.clean(self.cleaned_data.get("target_time_field", ""))

    def clean_skew_seconds(self):
        value = self.cleaned_data.get("skew_seconds")
        if value is not None and value > 86_400:
            raise forms.ValidationError("A clock-skew allowance above a day hides real lag.")
        return value

    def clean_overlap_seconds(self):
        value = self.cleaned_data.get("overlap_seconds")
        if value is not None and value > 7 * 86_400:
            raise forms.ValidationError("Re-read at most a week before the last measurement.")
        return value


def _settings_rows(ev) -> list[FreshnessSettings]:
    return list(
        FreshnessSettings.objects.filter(project=ev.project).select_related(
            "connection__source", "connection__target"
        )
    )


FRESHNESS = RowKind(
    "freshness",
    "freshness fields",
    FreshnessSettings,
    FreshnessSettingsForm,
    ("Connection", "Times say", "Source field", "Target field", "Skew", "Overlap"),
    lambda f: [
        str(f.connection),
        f.get_basis_display(),
        f.source_time_field,
        f.target_time_field,
        f"{f.skew_seconds} s",
        f"{f.overlap_seconds} s",
    ],
    _settings_rows,
    step=2,
    also=(STEP_HEADER,),
    after_save=lambda f: sync_connection(f.connection_id),
    after_delete=lambda f: sync_connection(f.connection_id),
    delete_note="Criteria measured on this connection stop being measured.",
)


def step2_tables(request, project, ctx: dict) -> None:
    ctx["freshness_table"] = table_context(request, project, FRESHNESS, ctx["evidence"])


def step1_context(project, ctx: dict) -> None:
    """The propagation-lag criteria with their latest measurement, for step 1's card."""
    ev = ctx["evidence"]
    criteria = [c for c in ev.criteria if c.metric_key == MetricKey.FRESHNESS]
    if not criteria:
        ctx["freshness_criteria"] = []
        return
    connections = {c.pk: c for c in ev.connections}
    for c in criteria:
        c.freshness_connection = connections.get(c.freshness_connection_id)
    configured = set(
        FreshnessSettings.objects.filter(project=project).values_list("connection_id", flat=True)
    )
    states = {s.criterion_id: s for s in FreshnessState.objects.filter(criterion__in=criteria)}
    ctx["freshness_criteria"] = [
        {
            "criterion": c,
            "state": states.get(c.pk),
            "problem": freshness.problem(c, configured),
            "every": lag.every_minutes(c),
        }
        for c in criteria
    ]


def _criterion(project: IntegrationProject, pk: int) -> SuccessCriterion:
    return get_object_or_404(
        SuccessCriterion.objects.select_related(
            "freshness_connection__source", "freshness_connection__target"
        ),
        project=project,
        pk=pk,
    )


@project_access("view")
def criterion_freshness(request: HttpRequest, project: IntegrationProject, pk: int):
    return render_page(request, project, _criterion(project, pk))


def render_page(request, project, criterion, *, canary_form=None, status: int = 200):
    """The criterion's page; `canary_form` is a probe form that failed validation."""
    ctx = project_context(request, project)
    settings = FreshnessSettings.objects.filter(
        connection_id=criterion.freshness_connection_id
    ).first()
    points = list(
        SliPoint.objects.filter(criterion=criterion, resolution=SliPoint.Resolution.RAW).order_by(
            "-at"
        )[:RECENT_POINTS]
    )
    ctx.update(
        criterion=criterion,
        settings=settings,
        state=FreshnessState.objects.filter(criterion=criterion).first(),
        problem=freshness.problem(criterion),
        every=lag.every_minutes(criterion),
        beat_entry=entry_name(criterion.pk),
        points=points,
        latest=points[0] if points else None,
    )
    probe = canary.probe_of(criterion) if criterion.freshness_connection_id else None
    if canary_form is None and ctx.get("can_edit") and criterion.freshness_connection_id:
        canary_form = CanaryProbeForm(instance=probe, prefix="canary")
    ctx.update(
        canary=probe,
        canary_form=canary_form,
        canary_problem=canary.problem(criterion, probe),
    )
    return render(request, "planner/criterion_freshness.html", ctx, status=status)


@project_access("edit")
@require_POST
def criterion_measure(request: HttpRequest, project: IntegrationProject, pk: int):
    """'Measure now': a worker measures; the page shows the point or the reason."""
    criterion = _criterion(project, pk)
    try:
        message = freshness.request_measurement(criterion)
    except freshness.MeasurementFailed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, message)
    return redirect("planner:criterion_freshness", project_id=project.pk, pk=criterion.pk)
