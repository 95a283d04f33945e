from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import validate_email
from django.db.models import Q

from planner.models import (
    Connection,
    IntegrationProject,
    Membership,
    Role,
    System,
)


def date_input() -> forms.DateInput:
    # type=date needs ISO values to show a stored date.
    return forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})


def textarea(rows: int = 3) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows})


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
    who = forms.CharField(
        label="Username or email",
        max_length=254,
        help_text="An email address nobody uses yet gets an invitation to set a password.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args, project: IntegrationProject, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_who(self):
        """The account to add, or the email address to invite when no account has it."""
        who = self.cleaned_data["who"].strip()
        users = get_user_model().objects.filter(Q(username__iexact=who) | Q(email__iexact=who))
        user = users.first()
        if user is None:
            if "@" not in who:
                raise forms.ValidationError(
                    f"No account has the username '{who}'. Invite by email address instead."
                )
            try:
                validate_email(who)
            except forms.ValidationError as error:
                raise forms.ValidationError(f"'{who}' is not a valid email address.") from error
            return who.lower()
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
