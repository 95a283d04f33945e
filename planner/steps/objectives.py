"""Step 1: objectives, measurable success criteria and data elements (page, forms, tables)."""

from django import forms
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from planner.metrics import figures as kpis
from planner.metrics import freshness as lag
from planner.models import (
    DataElement,
    FreshnessSettings,
    IntegrationProject,
    MetricKey,
    Objective,
    SuccessCriterion,
)
from planner.models.base import choice_label, window_words
from planner.runs.freshness_schedule import drop_measurement, sync_measurement
from planner.steps import freshness, practices
from planner.steps.monitoring import follow_criterion
from planner.steps.views import save_single, single_form
from planner.web.forms import ProjectScopedForm
from planner.web.permissions import project_access
from planner.web.rows import STEP_HEADER, RowKind, decimal_text, table_context


class ObjectiveForm(ProjectScopedForm):
    class Meta:
        model = Objective
        fields = ["business_objective", "stakeholders_consulted"]
        widgets = {
            "business_objective": forms.Textarea(attrs={"rows": 3}),
            "stakeholders_consulted": forms.Textarea(attrs={"rows": 3}),
        }


class SuccessCriterionForm(ProjectScopedForm):
    class Meta:
        model = SuccessCriterion
        fields = [
            "metric",
            "metric_key",
            "comparator",
            "target",
            "unit",
            "attainment_pct",
            "window_value",
            "window_unit",
            "freshness_connection",
            "measure_every_minutes",
            "evidence_value",
            "evidence_date",
            "evidence_note",
        ]
        widgets = {
            "target": forms.NumberInput(attrs={"step": "any"}),
            "evidence_value": forms.NumberInput(attrs={"step": "any"}),
            "evidence_date": forms.DateInput(attrs={"type": "date"}),
            "attainment_pct": forms.NumberInput(attrs={"step": "any", "min": 0, "max": 100}),
            "measure_every_minutes": forms.NumberInput(attrs={"min": 1, "max": 60}),
        }
        labels = {"window_value": "Window", "attainment_pct": "Attainment %"}

    connection_fields = ("freshness_connection",)

    def clean_measure_every_minutes(self):
        value = self.cleaned_data.get("measure_every_minutes")
        if value is not None and not 1 <= value <= 60:
            raise forms.ValidationError("Measure between every minute and every 60 minutes.")
        return value

    def _clean_freshness(self, data: dict) -> None:
        """A propagation-lag criterion names a connection with freshness fields and a
        duration target; any other criterion names none."""
        if data.get("metric_key") != MetricKey.FRESHNESS:
            if data.get("freshness_connection") is not None:
                self.add_error(
                    "freshness_connection",
                    "Only a criterion measured by propagation lag names a connection here.",
                )
            return
        connection = data.get("freshness_connection")
        if connection is None:
            self.add_error(
                "freshness_connection", "Propagation lag is measured on a connection: pick one."
            )
        elif not FreshnessSettings.objects.filter(connection=connection).exists():
            self.add_error(
                "freshness_connection",
                f"{connection} has no freshness fields yet: mark the fields that tell when a"
                " record changed in step 2 first.",
            )
        if lag.target_seconds(1, data.get("unit") or "") is None:
            self.add_error(
                "unit",
                "Propagation lag is a duration:"
                " state the target in seconds, minutes, hours or days.",
            )

    def clean_evidence_date(self):
        value = self.cleaned_data.get("evidence_date")
        if value is not None and value > timezone.localdate():
            raise forms.ValidationError("Evidence cannot be dated in the future.")
        return value

    def clean(self):
        data = super().clean()
        key = data.get("metric_key")
        figure_unit = kpis.unit_of(key) if key else ""
        if figure_unit:
            # A catalogue figure has one unit: the target is stated in it.
            unit = kpis.normalise_unit(data.get("unit") or "")
            if unit in ("", "percent", "pct"):
                unit = "%" if figure_unit == "%" else unit
            if unit and unit != figure_unit:
                label = kpis.LABELS[key][0]
                self.add_error("unit", f"The {label} is measured in {figure_unit}: state it so.")
            else:
                data["unit"] = figure_unit
                self.instance.unit = figure_unit
        has_value = data.get("evidence_value") is not None
        has_date = data.get("evidence_date") is not None
        if has_value != has_date:
            field = "evidence_date" if has_value else "evidence_value"
            self.add_error(field, "Manual evidence needs both the measured value and its date.")
        if key:
            self.instance.metric_flag = ""
        self._clean_freshness(data)
        return data

    def clean_attainment_pct(self):
        value = self.cleaned_data.get("attainment_pct")
        if value is not None and not 0 < value <= 100:
            raise forms.ValidationError("Attainment is a percentage above 0 and at most 100.")
        return value


class DataElementForm(ProjectScopedForm):
    system_fields = ("source_of_truth",)

    class Meta:
        model = DataElement
        fields = ["name", "source_of_truth", "notes"]

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        clash = DataElement.objects.filter(project=self.project, name__iexact=name)
        if clash.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"'{name}' is already listed.")
        return name


def _criterion_cells(c: SuccessCriterion) -> list[str]:
    comparator = choice_label(c, "comparator")
    target = f"{comparator} {decimal_text(c.target) or '?'} {c.unit}".strip()
    window = ""
    if c.window_value:
        share = f"{decimal_text(c.attainment_pct)}% " if c.attainment_pct else ""
        window = f"{share}over {window_words(c.window_value, c.window_unit)}"
    measured_by = choice_label(c, "metric_key") if c.metric_key else "not chosen"
    if c.has_manual_evidence:
        measured_by += f"; evidence {decimal_text(c.evidence_value)} on {c.evidence_date:%d %b %Y}"
    return [c.metric, measured_by, target, window]


def _criterion_warning(c: SuccessCriterion) -> str:
    if c.metric_flag:
        return c.metric_flag
    if not c.metric_key:
        return "Pick the figure that measures it"
    if not c.is_measurable:
        return "Needs metric, target and window"
    return ""


def _after_criterion_save(c: SuccessCriterion) -> None:
    follow_criterion(c)
    sync_measurement(c)


CRITERIA = RowKind(
    "criterion",
    "success criterion",
    SuccessCriterion,
    SuccessCriterionForm,
    ("Metric", "Measured by", "Target", "Window"),
    _criterion_cells,
    lambda ev: ev.criteria,
    warning=_criterion_warning,
    step=1,
    also=(STEP_HEADER,),
    # the links to each criterion's service-level page under the table, reversed once
    extra_urls=(("service_level_url", "planner:criterion_service_level", {}),),
    after_save=_after_criterion_save,
    after_delete=lambda c: drop_measurement(c.pk),
)
ELEMENTS = RowKind(
    "element",
    "data element",
    DataElement,
    DataElementForm,
    ("Data element", "Source of truth", "Notes"),
    lambda e: [e.name, str(e.source_of_truth or ""), e.notes],
    lambda ev: ev.data_elements,
    warning=lambda e: "" if e.source_of_truth_id else "No source of truth",
    step=1,
    also=(STEP_HEADER,),
)


def page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    ctx["objective_form"] = single_form(
        forms, "objective_form", ObjectiveForm, ev.objective, Objective, project
    )
    ctx["criteria_table"] = table_context(request, project, CRITERIA, ev)
    ctx["elements_table"] = table_context(request, project, ELEMENTS, ev)
    practices.step1_tables(request, project, ctx)
    freshness.step1_context(project, ctx)


@project_access("edit")
def objective_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return save_single(request, project, 1, Objective, ObjectiveForm, "objective_form", "objective")
