"""Forms of steps 4 to 7 and of sign-offs. Errors name the field they are about."""

from pathlib import PurePath

from django import forms
from django.db.models import Max

from planner.models import (
    DeploymentPlan,
    IncidentEntry,
    Monitor,
    RollbackStep,
    RollbackTrigger,
    SignOff,
    SuccessCriterion,
    TestCase,
    TestPlan,
    TrainingPlan,
)
from planner.models.plan import TestStage
from planner.models.signoff import SIGN_OFF_ROLES
from planner.web.forms import ProjectScopedForm

EVIDENCE_MAX_BYTES = 20 * 1024 * 1024
EVIDENCE_EXTENSIONS = frozenset(
    {"pdf", "png", "jpg", "jpeg", "gif", "txt", "log", "csv", "json", "xml", "xlsx", "docx", "zip"}
)


def _date_input() -> forms.DateInput:
    # type=date needs ISO values to show a stored date.
    return forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})


def _text(rows: int = 3) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows})


# Step 4 ---------------------------------------------------------------------------------------


class TestPlanForm(ProjectScopedForm):
    __test__ = False

    class Meta:
        model = TestPlan
        fields = ["parallel_run", "cutover_rule"]
        widgets = {"parallel_run": _text(2), "cutover_rule": _text(2)}


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
        ]
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
        return data


# Step 5 ---------------------------------------------------------------------------------------


class DeploymentPlanForm(ProjectScopedForm):
    class Meta:
        model = DeploymentPlan
        fields = [
            "pipeline",
            "env_dev",
            "env_staging",
            "env_prod",
            "rollout",
            "rollout_plan",
            "restore",
            "restore_notes",
            "rehearsed_on",
            "rehearsal_result",
            "rehearsal_notes",
        ]
        widgets = {
            "pipeline": _text(4),
            "rollout_plan": _text(2),
            "restore_notes": _text(2),
            "rehearsal_notes": _text(2),
            "rehearsed_on": _date_input(),
        }

    def clean(self):
        data = super().clean()
        if data.get("rehearsal_result") and not data.get("rehearsed_on"):
            self.add_error("rehearsed_on", "Give the date of the rehearsal with its result.")
        if data.get("rehearsed_on") and not data.get("rehearsal_result"):
            self.add_error("rehearsal_result", "Say how the rehearsal went.")
        return data


class RollbackTriggerForm(ProjectScopedForm):
    class Meta:
        model = RollbackTrigger
        fields = ["metric", "comparator", "threshold", "unit", "window_value", "window_unit"]
        widgets = {"threshold": forms.NumberInput(attrs={"step": "any"})}


class RollbackStepForm(ProjectScopedForm):
    class Meta:
        model = RollbackStep
        fields = ["position", "action", "owner", "expected_minutes"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.pk is None:
            # A new step goes last unless the editor says otherwise.
            top = RollbackStep.objects.filter(project=self.project).aggregate(Max("position"))
            self.initial["position"] = (top["position__max"] or 0) + 1


# Step 6 ---------------------------------------------------------------------------------------


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


# Step 7 ---------------------------------------------------------------------------------------


class TrainingPlanForm(ProjectScopedForm):
    class Meta:
        model = TrainingPlan
        fields = [
            "audiences",
            "guide",
            "recording",
            "demo_session",
            "feedback_channel",
            "go_live_on",
            "review_schedule",
        ]
        widgets = {"audiences": _text(3), "go_live_on": _date_input()}


class IncidentEntryForm(ProjectScopedForm):
    class Meta:
        model = IncidentEntry
        fields = ["symptom", "to_check", "fix", "escalation"]
        help_texts = {"to_check": ""}


# Sign-off -------------------------------------------------------------------------------------


class SignOffForm(forms.Form):
    decision = forms.ChoiceField(choices=SignOff.Decision.choices, widget=forms.RadioSelect)
    comment = forms.CharField(required=False, widget=_text(2))
    content_hash = forms.CharField(widget=forms.HiddenInput, max_length=64)


class ApproverPolicyForm(forms.Form):
    """For each step, the roles whose approval it needs."""

    def __init__(self, *args, steps, current: dict[int, list[str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [(r.value, r.label) for r in SIGN_OFF_ROLES]
        for step in steps:
            self.fields[f"step_{step.number}"] = forms.MultipleChoiceField(
                label=f"{step.number}. {step.title}",
                choices=choices,
                required=False,
                initial=current.get(step.number, []),
                widget=forms.CheckboxSelectMultiple,
            )

    def roles(self) -> dict[int, list[str]]:
        return {
            int(name.removeprefix("step_")): sorted(value)
            for name, value in self.cleaned_data.items()
        }
