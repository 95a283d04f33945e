"""Step 2's form: one mapping row, its rule checked as it is saved."""

from types import SimpleNamespace

from django import forms

from planner.mapping.checks import rule_errors
from planner.mapping.specs import spec_of
from planner.mapping.tolerance import tolerance_problem
from planner.models import FieldMapping
from planner.web.forms import ProjectScopedForm


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
            "tolerance",
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
            "tolerance": forms.TextInput(attrs={"placeholder": "exact", "spellcheck": "false"}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A default value or a note is kept exactly as written, spaces and line breaks too.
        for name in ("null_default", "notes"):
            self.fields[name].strip = False

    def clean_rule(self):
        rule = self.cleaned_data["rule"].strip()
        errors = rule_errors(rule, self.data.get(self.add_prefix("target_type"), ""))
        if errors:
            raise forms.ValidationError(str(errors[0]))
        return rule

    def clean_tolerance(self):
        tolerance = self.cleaned_data["tolerance"].strip()
        target_type = self.data.get(self.add_prefix("target_type"), "") or None
        problem = tolerance_problem(tolerance, target_type)
        if problem:
            raise forms.ValidationError(problem)
        return tolerance

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
        from planner.mapping.samples import row_problem  # polars: loaded when a row is checked

        problem = row_problem(spec_of(SimpleNamespace(**values)))
        if problem is not None:
            self.add_error(problem.field or None, problem.message)
