"""Step 1: objectives, measurable success criteria and data elements (page, forms, tables)."""

from django import forms
from django.http import HttpRequest, HttpResponse

from planner.models import DataElement, IntegrationProject, Objective, SuccessCriterion
from planner.steps import practices
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
            "comparator",
            "target",
            "unit",
            "attainment_pct",
            "window_value",
            "window_unit",
        ]
        widgets = {
            "target": forms.NumberInput(attrs={"step": "any"}),
            "attainment_pct": forms.NumberInput(attrs={"step": "any", "min": 0, "max": 100}),
        }
        labels = {"window_value": "Window", "attainment_pct": "Attainment %"}

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
    target = f"{c.get_comparator_display()} {decimal_text(c.target) or '?'} {c.unit}".strip()
    window = ""
    if c.window_value:
        share = f"{decimal_text(c.attainment_pct)}% " if c.attainment_pct else ""
        window = f"{share}over {c.window_value} {c.get_window_unit_display()}"
    return [c.metric, target, window]


CRITERIA = RowKind(
    "criterion",
    "success criterion",
    SuccessCriterion,
    SuccessCriterionForm,
    ("Metric", "Target", "Window"),
    _criterion_cells,
    lambda ev: ev.criteria,
    warning=lambda c: "" if c.is_measurable else "Needs metric, target and window",
    step=1,
    also=(STEP_HEADER,),
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


@project_access("edit")
def objective_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return save_single(request, project, 1, Objective, ObjectiveForm, "objective_form", "objective")
