from functools import partial

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


class LoadedChoices(forms.models.ModelChoiceIterator):
    """A model choice field's choices from rows already loaded, in the queryset's order: the
    add forms of a step page offer the project's systems and connections, which the page's
    evidence holds, instead of each select querying and building them again."""

    def __init__(self, field, records: list) -> None:
        super().__init__(field)
        self.records = records

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.records:
            yield self.choice(obj)

    def __len__(self) -> int:
        return len(self.records) + (self.field.empty_label is not None)

    def __bool__(self) -> bool:
        return self.field.empty_label is not None or bool(self.records)


class ProjectScopedForm(VersionedForm):
    """A form whose system and connection choices are limited to the project's own."""

    system_fields: tuple[str, ...] = ()  # each offers System.objects.filter(project=...)
    connection_fields: tuple[str, ...] = ()  # each offers the project's connections

    def __init__(self, *args, project: IntegrationProject, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project
        # Built only for forms that choose among them: building a filter is not free, and a
        # step page builds several forms (each field takes its own copy).
        if self.system_fields:
            systems = System.objects.filter(project=project)
            for name in self.system_fields:
                self.fields[name].queryset = systems
        if self.connection_fields:
            connections = Connection.objects.filter(project=project)
            connections = connections.select_related("source", "target")
            for name in self.connection_fields:
                self.fields[name].queryset = connections

    def choices_from(self, evidence) -> "ProjectScopedForm":
        """Offer the systems and connections `evidence` (the page's) has loaded: the same
        rows in the same order as the querysets above, without their queries."""
        loaded = [(n, evidence.systems) for n in self.system_fields]
        loaded += [(n, evidence.connections) for n in self.connection_fields]
        for name, records in loaded:
            field = self.fields[name]
            field.iterator = partial(LoadedChoices, records=records)
            field.widget.choices = field.choices
        return self

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
