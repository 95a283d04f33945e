"""Step 4: the incremental test plan (page, forms, the test-case table, evidence downloads)."""

from pathlib import PurePath

from django import forms
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from planner.checklist import delivery as plan
from planner.models import IntegrationProject, TestCase, TestPlan
from planner.models.testing import TestStage
from planner.steps import practices
from planner.steps.views import save_single, single_form
from planner.web.forms import ProjectScopedForm, textarea
from planner.web.permissions import project_access
from planner.web.rows import STEP_HEADER, RowKind, table_context

STAGES = "planner/steps/step4.html#stages"


EVIDENCE_MAX_BYTES = 20 * 1024 * 1024
EVIDENCE_EXTENSIONS = frozenset(
    {"pdf", "png", "jpg", "jpeg", "gif", "txt", "log", "csv", "json", "xml", "xlsx", "docx", "zip"}
)


class TestPlanForm(ProjectScopedForm):
    __test__ = False

    class Meta:
        model = TestPlan
        fields = ["parallel_run", "cutover_rule"]
        widgets = {"parallel_run": textarea(2), "cutover_rule": textarea(2)}


class TestCaseForm(ProjectScopedForm):
    __test__ = False

    class Meta:
        model = TestCase
        fields = [
            "stage",
            "scenario",
            "description",
            "data_set",
            "expected_result",
            "pass_criterion",
            "owner",
            "status",
            "evidence_file",
            "evidence_note",
            "accepted_findings",
        ]
        widgets = {"accepted_findings": textarea(2)}
        help_texts = {"pass_criterion": ""}  # the column says it; keep the inline row compact

    def clean_evidence_file(self):
        upload = self.cleaned_data.get("evidence_file")
        if not upload or not hasattr(upload, "size"):
            return upload
        if upload.size > EVIDENCE_MAX_BYTES:
            raise forms.ValidationError(
                f"'{upload.name}' is {upload.size / 1e6:.1f} MB; the limit is "
                f"{EVIDENCE_MAX_BYTES // (1024 * 1024)} MB."
            )
        extension = PurePath(upload.name).suffix.lower().lstrip(".")
        if extension not in EVIDENCE_EXTENSIONS:
            allowed = ", ".join(sorted(EVIDENCE_EXTENSIONS))
            raise forms.ValidationError(
                f"'{upload.name}' is not a kind of file accepted as evidence ({allowed})."
            )
        return upload

    def clean(self):
        data = super().clean()
        stage, scenario = data.get("stage"), data.get("scenario")
        if stage == TestStage.ERRORS and not scenario:
            self.add_error("scenario", "Say which error scenario this case covers.")
        elif stage and stage != TestStage.ERRORS and scenario:
            self.add_error("scenario", "Only error-scenario cases have an error scenario.")
        run = self.instance.validation_run if self.instance.validation_run_id else None
        if (
            data.get("status") == TestCase.Status.PASSED
            and run is not None
            and run.status != run.Status.PASSED
            and not (data.get("accepted_findings") or "").strip()
        ):
            self.add_error(
                "status",
                f"Validation run #{run.number} {run.get_status_display().lower()}: a case cannot"
                " pass on it. Link a passed run, or state the accepted findings.",
            )
        return data


def evidence_url(case: TestCase) -> str:
    return reverse("planner:testcase_evidence", args=[case.project_id, case.pk])


def _evidence_cell(case: TestCase) -> str:
    parts = []
    if case.evidence_file:
        name = case.evidence_file.name.rsplit("/", 1)[-1]
        parts.append(format_html('<a href="{}">{}</a>', evidence_url(case), name))
    if case.evidence_note:
        parts.append(case.evidence_note)
    if case.accepted_findings:
        parts.append(format_html("Accepted findings: {}", case.accepted_findings))
    if run := plan.linked_run_of(case):  # linked from the run's page
        url = reverse("planner:run_show", args=[case.project_id, run.pk])
        parts.append(
            format_html(
                '<a href="{}">validation run #{}</a> ({}, {})',
                url,
                run.number,
                run.get_status_display().lower(),
                date_format(run.finished_at or run.created_at, "j M Y"),
            )
        )
    return format_html_join(" · ", "{}", ((p,) for p in parts))


def _with_note(main: str, note: str, prefix: str = ""):
    """A cell's text with a smaller second line, so a row stays readable at 6 columns."""
    if not note:
        return main
    return format_html('{}<br><small class="muted">{}{}</small>', main, prefix, note)


def _case_cells(c: TestCase) -> list[str]:
    stage = c.get_stage_display()
    if c.scenario:
        stage = f"{stage}: {c.get_scenario_display().lower()}"
    return [
        stage,
        _with_note(c.description, c.data_set, "Data: "),
        _with_note(c.expected_result, c.pass_criterion, "Pass/fail: "),
        c.owner,
        c.get_status_display(),
        _evidence_cell(c),
    ]


def _case_warning(c: TestCase) -> str:
    if not c.pass_criterion.strip():
        return "No pass/fail criterion"
    if c.status == TestCase.Status.PASSED and not c.has_evidence:
        return "Passed without evidence"
    return plan.run_problem_of(c)


def _stage_context(ctx: dict, obj=None) -> None:
    ctx["stages"] = plan.stage_summary(ctx["evidence"])


CASES = RowKind(
    "testcase",
    "test case",
    TestCase,
    TestCaseForm,
    ("Stage", "Case and data set", "Expected result", "Owner", "Status", "Evidence"),
    _case_cells,
    lambda ev: plan.plan_of(ev).test_cases,
    warning=_case_warning,
    step=4,
    also=(STEP_HEADER, STAGES),
    extend=_stage_context,
)


def page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    p = plan.plan_of(ev)
    ctx["testplan_form"] = single_form(
        forms, "testplan_form", TestPlanForm, p.test_plan, TestPlan, project
    )
    ctx["stages"] = plan.stage_summary(ev)
    ctx["needs_reverse"] = plan.needs_reverse_stage(ev)
    ctx["cases_table"] = table_context(request, project, CASES, ev)
    practices.step4_tables(request, project, ctx)


@project_access("edit")
def testplan_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return save_single(request, project, 4, TestPlan, TestPlanForm, "testplan_form", "testplan")


@project_access("view")
def testcase_evidence(request: HttpRequest, project: IntegrationProject, pk: int):
    """The evidence file of a test case: only through this permission-checked view."""
    case = get_object_or_404(TestCase, project=project, pk=pk)
    if not case.evidence_file:
        raise Http404("This test case has no evidence file.")
    try:
        handle = case.evidence_file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The evidence file is missing from storage.") from exc
    name = case.evidence_file.name.rsplit("/", 1)[-1]
    return FileResponse(handle, as_attachment=True, filename=name)
