"""Step 2's form: one mapping row, its rule checked as it is saved."""

from django import forms

from planner.mapping.checks import rule_errors
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

    def clean(self):
        data = super().clean()
        if data.get("frequency") == FieldMapping.Frequency.MINUTES and not data.get(
            "every_minutes"
        ):
            self.add_error("every_minutes", "Say how many minutes between syncs.")
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
