from django import forms

from planner.models import NotificationPreference, Role
from planner.teamwork.assignments import WORK_ROLES

ASSIGNEE_REFUSED = (
    "The assignee must be a member of this project whose role can do this work ({roles})."
)


class AssignForm(forms.Form):
    assignee = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    due_date = forms.DateField(
        label="Due date", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, members, kind: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assignee"]
        field.choices = [("", "Nobody")] + [
            (m.user_id, f"{m.user.get_username()} ({m.get_role_display()})") for m in members
        ]
        roles = ", ".join(sorted(str(Role(r).label) for r in WORK_ROLES[kind]))
        field.error_messages["invalid_choice"] = ASSIGNEE_REFUSED.format(roles=roles)


class CommentForm(forms.Form):
    body = forms.CharField(
        label="Comment",
        max_length=5000,
        widget=forms.Textarea(
            attrs={"rows": 3, "data-mentions": "", "autocomplete": "off", "spellcheck": "true"}
        ),
        help_text="Type @ and a name to mention a member of this project.",
    )


class ResolveForm(forms.Form):
    change = forms.ChoiceField(
        label="Resolved with a change",
        required=False,
        help_text="The change that settled it, shown in the runbook's change log.",
    )

    def __init__(self, *args, choices, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["change"].choices = [("", "No change (just resolve)")] + [
            (c.key, c.label) for c in choices
        ]


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = ["email"]
        labels = {"email": "Email me"}
        widgets = {"email": forms.RadioSelect}
