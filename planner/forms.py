from types import SimpleNamespace

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from .mapping.checks import rule_errors
from .mapping.samples import row_problem
from .mapping.specs import spec_of
from .models import (
    Connection,
    DataElement,
    FieldMapping,
    IntegrationProject,
    Membership,
    Objective,
    PatternDecision,
    Role,
    SuccessCriterion,
    System,
)


class VersionedForm(forms.ModelForm):
    """Carries the version the editor started from, for the optimistic check on save."""

    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.pk:
            self.initial["expected_version"] = self.instance.version


class ProjectScopedForm(VersionedForm):
    """A form whose system choices are limited to the project's own inventory."""

    system_fields: tuple[str, ...] = ()

    def __init__(self, *args, project: IntegrationProject, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project
        for name in self.system_fields:
            self.fields[name].queryset = System.objects.filter(project=project)

    def save(self, commit: bool = True):
        self.instance.project = self.project
        return super().save(commit)


class ProjectForm(VersionedForm):
    class Meta:
        model = IntegrationProject
        fields = ["name", "business_problem"]
        widgets = {"business_problem": forms.Textarea(attrs={"rows": 3})}


class InviteForm(forms.Form):
    who = forms.CharField(label="Username or email", max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args, project: IntegrationProject, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_who(self):
        who = self.cleaned_data["who"].strip()
        users = get_user_model().objects.filter(Q(username__iexact=who) | Q(email__iexact=who))
        user = users.first()
        if user is None:
            raise forms.ValidationError(
                f"No account has the username or email '{who}'. Ask an administrator to create "
                "it, then invite again."
            )
        if Membership.objects.filter(project=self.project, user=user).exists():
            raise forms.ValidationError(f"{user.username} is already a member of this project.")
        return user


class RoleForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["role"]


class SystemForm(ProjectScopedForm):
    class Meta:
        model = System
        fields = ["name", "kind", "owner", "notes"]
        widgets = {"notes": forms.TextInput()}

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        clash = System.objects.filter(project=self.project, name__iexact=name)
        if clash.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"The inventory already has a system called '{name}'.")
        return name


class ConnectionForm(ProjectScopedForm):
    system_fields = ("source", "target")

    class Meta:
        model = Connection
        fields = [
            "source",
            "target",
            "direction",
            "trigger",
            "frequency",
            "volume_per_day",
            "peak_per_day",
        ]

    def clean(self):
        data = super().clean()
        source, target = data.get("source"), data.get("target")
        if source and target:
            if source == target:
                self.add_error("target", "A connection needs two different systems.")
            clash = Connection.objects.filter(project=self.project, source=source, target=target)
            if clash.exclude(pk=self.instance.pk).exists():
                self.add_error("target", f"{source} → {target} is already in the inventory.")
        volume, peak = data.get("volume_per_day"), data.get("peak_per_day")
        if volume is not None and peak is not None and peak < volume:
            self.add_error("peak_per_day", "The peak day cannot be below the typical day.")
        return data


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


class PatternDecisionForm(ProjectScopedForm):
    class Meta:
        model = PatternDecision
        fields = ["pattern", "rationale", "tools"]
        widgets = {"rationale": forms.Textarea(attrs={"rows": 4})}


class FieldMappingForm(ProjectScopedForm):
    class Meta:
        model = FieldMapping
        fields = [
            "source_field",
            "source_type",
            "target_field",
            "target_type",
            "max_length",
            "required",
            "null_rule",
            "null_default",
            "rule",
            "direction",
            "frequency",
            "every_minutes",
            "source_of_truth",
            "conflict_rule",
            "notes",
        ]
        widgets = {
            "rule": forms.TextInput(
                attrs={"class": "rule-input", "spellcheck": "false", "autocomplete": "off"}
            ),
            "notes": forms.TextInput(),
        }

    def clean_rule(self):
        rule = self.cleaned_data["rule"].strip()
        errors = rule_errors(rule, self.data.get(self.add_prefix("target_type"), ""))
        if errors:
            raise forms.ValidationError(str(errors[0]))
        return rule

    def clean_max_length(self):
        value = self.cleaned_data["max_length"]
        if value is not None and value < 1:
            raise forms.ValidationError(
                "The max length must be at least 1; leave it empty for no limit."
            )
        return value

    def clean(self):
        data = super().clean()
        if data.get("frequency") == FieldMapping.Frequency.MINUTES and not data.get(
            "every_minutes"
        ):
            self.add_error("every_minutes", "Say how many minutes between syncs.")
        self._refuse_what_the_engine_cannot_run(data)
        target = (data.get("target_field") or "").strip()
        connection_id = self.instance.connection_id
        if target and connection_id:
            clash = FieldMapping.objects.filter(
                connection_id=connection_id, target_field__iexact=target
            ).exclude(pk=self.instance.pk)
            if first := clash.first():
                self.add_error(
                    "target_field", f"'{target}' is already mapped from '{first.source_field}'."
                )
        return data

    def _refuse_what_the_engine_cannot_run(self, data: dict) -> None:
        """A row the engine would refuse (e.g. a default longer than the max length) is never
        saved: Try on samples and validation runs would have to skip it."""
        checked = ("max_length", "rule", "target_type", "null_rule", "null_default")
        if any(name in self.errors for name in checked):
            return  # one message at a time: the field's own error comes first
        values = {name: data.get(name) for name in self.Meta.fields}
        values["null_default"] = values["null_default"] or ""
        values["rule"] = values["rule"] or ""
        problem = row_problem(spec_of(SimpleNamespace(**values)))
        if problem is not None:
            self.add_error(problem.field or None, problem.message)
