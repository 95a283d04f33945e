"""Forms of the reviews pages: the review cadence, incidents and feedback, alert channels."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from planner.models import AlertChannel, FeedbackItem, Monitor, ReviewSchedule
from planner.runs.alerts import check_webhook_url
from planner.web.forms import VersionedForm


class ReviewScheduleForm(VersionedForm):
    class Meta:
        model = ReviewSchedule
        fields = ["first_every_months", "first_count", "then_every_months", "paused"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("first_every_months", "then_every_months"):
            self.fields[name].min_value = 1
            self.fields[name].widget.attrs["min"] = 1

    def clean(self):
        data = super().clean()
        for name in ("first_every_months", "then_every_months"):
            if data.get(name) == 0:
                self.add_error(name, "Must be at least 1 month.")
        return data


class FeedbackForm(forms.ModelForm):
    class Meta:
        model = FeedbackItem
        fields = ["kind", "summary"]


class ChannelForm(forms.ModelForm):
    class Meta:
        model = AlertChannel
        fields = ["kind", "target", "name", "severities"]

    def clean_severities(self):
        text = self.cleaned_data.get("severities") or ""
        names = [s.strip().lower() for s in text.split(",") if s.strip()]
        known = {s.value for s in Monitor.Severity}
        if unknown := [n for n in names if n not in known]:
            raise forms.ValidationError(
                f"Unknown severity {', '.join(unknown)}: use info, warning, critical."
            )
        return ",".join(dict.fromkeys(names))

    def clean(self):
        data = super().clean()
        kind, target = data.get("kind"), (data.get("target") or "").strip()
        if not kind or not target:
            return data
        try:
            if kind == AlertChannel.Kind.EMAIL:
                validate_email(target)
            else:
                check_webhook_url(target)
        except ValidationError as exc:
            self.add_error("target", exc)
        data["target"] = target
        return data
