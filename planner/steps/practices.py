"""The guides' practices on the step pages: connection owners (step 1), error handling,
security and personal data (step 2), generated error cases and backfill plans (step 4), the
dead-letter monitor (step 6). Forms, tables (row kinds) and the one-click actions."""

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from planner.checklist import practices as guides
from planner.checklist.evidence import Evidence
from planner.checklist.registry import STEPS_BY_NUMBER
from planner.models import (
    BackfillPlan,
    ConnectionOwnership,
    ErrorStrategy,
    FieldMapping,
    IntegrationProject,
    Monitor,
    PersonalField,
    RollbackTrigger,
    RolloutPhase,
    SecurityReview,
    SuccessCriterion,
    SystemProfile,
    ValidationRun,
)
from planner.models.practices import FATAL_CLASSES, TRANSIENT_CLASSES
from planner.web.concurrency import save_versioned
from planner.web.forms import ProjectScopedForm, date_input
from planner.web.permissions import project_access
from planner.web.rows import STEP_HEADER, RowKind, table_context


class OneEachForm(ProjectScopedForm):
    """A record of which there is at most one per `one_per` (a connection, a system, a mapping
    row): a second is refused in words on that field, not by the model's unique check."""

    one_per = ""

    def taken_message(self, value) -> str:
        raise NotImplementedError

    def clean(self):
        data = super().clean()
        value = data.get(self.one_per)
        if value is not None:
            taken = self._meta.model.objects.filter(**{self.one_per: value})
            if taken.exclude(pk=self.instance.pk).exists():
                self.add_error(self.one_per, self.taken_message(value))
        return data

    def validate_unique(self) -> None:
        # clean() says it in words; the model's own check would repeat it.
        exclude = self._get_validation_exclusions() | {self.one_per}
        try:
            self.instance.validate_unique(exclude=exclude)
        except forms.ValidationError as e:
            self._update_errors(e)


class ConnectionScopedForm(OneEachForm):
    """A per-connection record: the connection is one of the project's, and has only one."""

    one_per = "connection"
    connection_fields = ("connection",)

    def taken_message(self, connection) -> str:
        return f"{connection} already has one; edit it instead of adding another."


class OwnershipForm(ConnectionScopedForm):
    class Meta:
        model = ConnectionOwnership
        fields = [
            "connection",
            "data_owner",
            "integration_owner",
            "incident_resolver",
            "incident_contact",
        ]
        help_texts = {"incident_resolver": "", "incident_contact": ""}


def _class_field(label: str, choices) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=label,
        choices=[(c.value, c.label) for c in choices],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


class ErrorStrategyForm(ConnectionScopedForm):
    transient = _class_field("Transient (retried)", TRANSIENT_CLASSES)
    fatal = _class_field("Fatal (set aside)", FATAL_CLASSES)

    class Meta:
        model = ErrorStrategy
        fields = [
            "connection",
            "transient",
            "fatal",
            "retry_attempts",
            "backoff_seconds",
            "max_delay_seconds",
            "failed_records_to",
            "notify",
            "notify_within_minutes",
        ]
        help_texts = {"backoff_seconds": ""}

    def clean(self):
        data = super().clean()
        if not data.get("transient") and not data.get("fatal"):
            self.add_error("transient", "Tick at least one failure class, transient or fatal.")
        if data.get("transient") and not data.get("retry_attempts"):
            self.add_error("retry_attempts", "Transient failures are retried: how many times?")
        backoff, longest = data.get("backoff_seconds"), data.get("max_delay_seconds")
        if backoff and longest is not None and longest < backoff:
            self.add_error("max_delay_seconds", "The max delay cannot be below the first backoff.")
        return data


class SecurityReviewForm(ConnectionScopedForm):
    class Meta:
        model = SecurityReview
        fields = [
            "connection",
            "authentication",
            "encrypted_in_transit",
            "encrypted_at_rest",
            "retention",
            "reviewed_on",
            "reviewer",
        ]
        widgets = {"reviewed_on": date_input()}
        help_texts = {"authentication": "", "retention": ""}

    def clean(self):
        data = super().clean()
        if data.get("reviewed_on") and not (data.get("reviewer") or "").strip():
            self.add_error("reviewer", "Name who did the review on that date.")
        return data


class MappingChoice(forms.ModelChoiceField):
    def label_from_instance(self, m: FieldMapping) -> str:
        return f"{m.connection}: {m.source_field} → {m.target_field}"


class PersonalFieldForm(OneEachForm):
    one_per = "mapping"

    mapping = MappingChoice(queryset=FieldMapping.objects.none(), label="Field")

    class Meta:
        model = PersonalField
        fields = ["mapping", "purpose", "retention"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        rows = FieldMapping.objects.filter(project=self.project)
        self.fields["mapping"].queryset = rows.select_related(
            "connection__source", "connection__target"
        ).order_by("connection_id", "position", "pk")

    def taken_message(self, mapping) -> str:
        return f"'{mapping.target_field}' is already flagged."


class BackfillForm(ConnectionScopedForm):
    class Meta:
        model = BackfillPlan
        fields = [
            "connection",
            "no_history",
            "no_history_reason",
            "record_count",
            "order",
            "throttle_per_minute",
            "window",
            "undo",
            "verification_run",
        ]
        help_texts = {"order": "", "window": "", "verification_run": ""}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        runs = ValidationRun.objects.filter(project=self.project).exclude(
            status__in=ValidationRun.ACTIVE
        )
        self.fields["verification_run"].queryset = runs.select_related(
            "connection__source", "connection__target"
        ).order_by("-created_at")
        self.fields["verification_run"].label_from_instance = lambda r: (
            f"#{r.number} {r.connection} ({r.get_status_display().lower()})"
        )

    def clean(self):
        data = super().clean()
        if data.get("no_history"):
            if not (data.get("no_history_reason") or "").strip():
                self.add_error("no_history_reason", "Say why there is no history to move.")
            return data
        run, connection = data.get("verification_run"), data.get("connection")
        if run and connection and run.connection_id != connection.pk:
            self.add_error(
                "verification_run", f"Run #{run.number} checked {run.connection}, not {connection}."
            )
        elif run and run.kind != "validation":
            self.add_error(
                "verification_run", f"Run #{run.number} is a parallel run, not a reconciliation."
            )
        return data


class SystemProfileForm(OneEachForm):
    one_per = "system"
    system_fields = ("system",)

    environments = forms.MultipleChoiceField(
        label="Environments available",
        choices=SystemProfile.Environment.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = SystemProfile
        fields = [
            "system",
            "api",
            "documentation",
            "rate_limits",
            "authentication",
            "environments",
            "volume",
            "peak_periods",
        ]
        help_texts = {"rate_limits": ""}

    def taken_message(self, system) -> str:
        return f"{system} already has a profile; edit it instead."


class RolloutPhaseForm(ProjectScopedForm):
    class Meta:
        model = RolloutPhase
        fields = [
            "position",
            "audience",
            "canary_percent",
            "feature_flag",
            "blast_radius",
            "promote_on_criterion",
            "promote_on_monitor",
            "promotion_note",
            "rollback_trigger",
        ]
        widgets = {"canary_percent": forms.NumberInput(attrs={"step": "any"})}
        help_texts = {"audience": "", "blast_radius": ""}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["promote_on_criterion"].queryset = SuccessCriterion.objects.filter(
            project=self.project
        )
        self.fields["promote_on_monitor"].queryset = Monitor.objects.filter(project=self.project)
        self.fields["rollback_trigger"].queryset = RollbackTrigger.objects.filter(
            project=self.project
        )
        if not self.is_bound and self.instance.pk is None:
            # A new phase goes last unless the editor says otherwise.
            self.initial["position"] = RolloutPhase.objects.filter(project=self.project).count() + 1


# Tables ----------------------------------------------------------------------------------------


def _gaps(obj) -> str:
    missing = obj.missing
    return f"Needs {', '.join(missing)}" if missing else ""


OWNERSHIPS = RowKind(
    "ownership",
    "connection owners",
    ConnectionOwnership,
    OwnershipForm,
    ("Connection", "Data owner", "Integration owner", "Resolves incidents", "Contact"),
    lambda o: [
        str(o.connection),
        o.data_owner,
        o.integration_owner,
        o.incident_resolver,
        o.incident_contact,
    ],
    lambda ev: list(guides.practices_of(ev).ownerships.values()),
    warning=_gaps,
    step=1,
    also=(STEP_HEADER,),
)


def _classes_text(codes: list[str]) -> str:
    return ", ".join(guides.class_label(c).lower() for c in codes)


def _retry_text(s: ErrorStrategy) -> str:
    if not s.retry_attempts:
        return ""
    return (
        f"{s.retry_attempts}× from {s.backoff_seconds or '?'} s, max {s.max_delay_seconds or '?'} s"
    )


def _notify_text(s: ErrorStrategy) -> str:
    if s.notify_within_minutes is None:
        return s.notify
    return f"{s.notify} within {s.notify_within_minutes} min"


STRATEGIES = RowKind(
    "errorstrategy",
    "error-handling strategy",
    ErrorStrategy,
    ErrorStrategyForm,
    ("Connection", "Transient", "Fatal", "Retries", "Failed records", "Notified"),
    lambda s: [
        str(s.connection),
        _classes_text(s.transient),
        _classes_text(s.fatal),
        _retry_text(s),
        s.get_failed_records_to_display(),
        _notify_text(s),
    ],
    lambda ev: list(guides.practices_of(ev).strategies.values()),
    warning=_gaps,
    step=2,
    also=(STEP_HEADER,),
)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


SECURITY = RowKind(
    "securityreview",
    "security review",
    SecurityReview,
    SecurityReviewForm,
    ("Connection", "Authentication", "In transit", "At rest", "Retention", "Last review"),
    lambda r: [
        str(r.connection),
        r.authentication,
        _yes(r.encrypted_in_transit),
        _yes(r.encrypted_at_rest),
        r.retention,
        f"{r.reviewed_on:%d %b %Y} by {r.reviewer}" if r.reviewed_on else "",
    ],
    lambda ev: list(guides.practices_of(ev).security.values()),
    warning=lambda r: "" if r.reviewed_on else "Not reviewed yet",
    step=2,
    also=(STEP_HEADER,),
)


PERSONAL = RowKind(
    "personalfield",
    "personal data field",
    PersonalField,
    PersonalFieldForm,
    ("Field", "Purpose", "Retention"),
    lambda p: [
        f"{p.mapping.connection}: {p.mapping.source_field} → {p.mapping.target_field}",
        p.purpose,
        p.retention,
    ],
    lambda ev: guides.practices_of(ev).personal,
    warning=lambda p: (
        "" if p.purpose.strip() and p.retention.strip() else "Needs purpose and retention"
    ),
    step=2,
    also=(STEP_HEADER,),
)


PROFILES = RowKind(
    "systemprofile",
    "system profile",
    SystemProfile,
    SystemProfileForm,
    ("System", "API, docs", "Authentication", "Rate limits", "Environments", "Volume, peaks"),
    lambda p: [
        str(p.system),
        ", ".join(x for x in (p.get_api_display(), p.get_documentation_display()) if x)
        + (" docs" if p.documentation else ""),
        p.get_authentication_display(),
        p.rate_limits,
        ", ".join(SystemProfile.Environment(e).label for e in p.environments),
        "; ".join(x for x in (p.volume, p.peak_periods) if x),
    ],
    lambda ev: list(guides.practices_of(ev).profiles.values()),
    warning=_gaps,
    step=1,
    also=(STEP_HEADER,),
)


def _phase_cells(p: RolloutPhase) -> list[str]:
    share = f" ({p.canary_percent.normalize():f} %)" if p.canary_percent is not None else ""
    promote = [x for x in (p.promote_on_criterion, p.promote_on_monitor) if x]
    promotion = " / ".join(str(x) for x in promote)
    if p.promotion_note:
        promotion = f"{promotion}; {p.promotion_note}" if promotion else p.promotion_note
    return [
        str(p.position),
        f"{p.audience}{share}",
        p.feature_flag,
        p.blast_radius,
        promotion,
        str(p.rollback_trigger or ""),
    ]


PHASES = RowKind(
    "rolloutphase",
    "rollout phase",
    RolloutPhase,
    RolloutPhaseForm,
    ("Order", "Who", "Feature flag", "Blast radius", "Promote when", "Roll back when"),
    _phase_cells,
    lambda ev: guides.practices_of(ev).phases,
    warning=_gaps,
    step=5,
    also=(STEP_HEADER,),
)


def _run_cell(b: BackfillPlan) -> str:
    if not b.verification_run_id:
        return ""
    url = reverse("planner:run_show", args=[b.project_id, b.verification_run_id])
    status = b.verification_run.get_status_display().lower()
    return format_html('<a href="{}">run #{}</a> ({})', url, b.verification_run.number, status)


def _backfill_cells(b: BackfillPlan) -> list:
    if b.no_history:
        return [str(b.connection), f"No history to move: {b.no_history_reason}", "", "", "", ""]
    count = f"{b.record_count:,}" if b.record_count is not None else ""
    throttle = f"{b.throttle_per_minute:,}/min" if b.throttle_per_minute else ""
    return [
        str(b.connection),
        f"{count} {b.order}".strip(),
        throttle,
        b.window,
        b.undo,
        _run_cell(b),
    ]


BACKFILLS = RowKind(
    "backfill",
    "backfill plan",
    BackfillPlan,
    BackfillForm,
    ("Connection", "Records, order", "Throttle", "Window", "Undo", "Verified by"),
    _backfill_cells,
    lambda ev: list(guides.practices_of(ev).backfills.values()),
    warning=_gaps,
    step=4,
    also=(STEP_HEADER,),
)


# Page parts --------------------------------------------------------------------------------


def step1_tables(request, project, ctx: dict) -> None:
    ctx["profiles_table"] = table_context(request, project, PROFILES, ctx["evidence"])
    ctx["ownership_table"] = table_context(request, project, OWNERSHIPS, ctx["evidence"])


def step2_tables(request, project, ctx: dict) -> None:
    ev = ctx["evidence"]
    ctx["strategies_table"] = table_context(request, project, STRATEGIES, ev)
    ctx["security_table"] = table_context(request, project, SECURITY, ev)
    ctx["personal_table"] = table_context(request, project, PERSONAL, ev)


def step4_tables(request, project, ctx: dict) -> None:
    ev = ctx["evidence"]
    ctx["missing_error_cases"] = [
        (s.connection, guides.class_label(code).lower())
        for s, code in guides.missing_error_cases(ev)
    ]
    ctx["backfill_table"] = table_context(request, project, BACKFILLS, ev)


def step5_tables(request, project, ctx: dict) -> None:
    ev = ctx["evidence"]
    ctx["phases_table"] = table_context(request, project, PHASES, ev)
    # The backfill is planned in step 4; the deployment runs it, so step 5 shows where each
    # connection's plan stands and links to it.
    plans = guides.practices_of(ev).backfills
    ctx["backfill_status"] = [(c, plans.get(c.pk)) for c in ev.connections]
    ctx["backfill_url"] = STEPS_BY_NUMBER[4].url(project.pk, "backfill")


def step6_context(request, project, ctx: dict) -> None:
    ctx["needs_dead_letter_monitor"] = guides.needs_dead_letter_monitor(ctx["evidence"])


# One-click actions -------------------------------------------------------------------------


@project_access("edit")
@require_POST
def error_cases_generate(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    """One error-scenario test case per failure class of each strategy that has none yet."""
    missing = guides.missing_error_cases(Evidence.load(project))
    with transaction.atomic():
        for strategy, code in missing:
            save_versioned(guides.case_for(strategy, code), None)
    if missing:
        messages.success(
            request,
            f"Added {len(missing)} error-scenario test case{'s' if len(missing) != 1 else ''}: "
            "run each and record its evidence.",
        )
    else:
        messages.info(request, "Every failure class already has its test case.")
    return redirect(STEPS_BY_NUMBER[4].url(project.pk, "cases"))


@project_access("edit")
@require_POST
def dead_letter_monitor(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    """One click: a monitor alerting as soon as failed records pile up where they are set aside."""
    ev = Evidence.load(project)
    if not guides.needs_dead_letter_monitor(ev):
        messages.info(request, "The dead-letter volume is already monitored.")
        return redirect(STEPS_BY_NUMBER[6].url(project.pk, "monitors"))
    routes = {s.notify.strip() for s in guides.practices_of(ev).strategies.values()} - {""}
    monitor = Monitor(
        project=project,
        kind=Monitor.Kind.DEAD_LETTER,
        name="failed records set aside",
        comparator=">",
        threshold=0,
        unit="records",
        window_value=15,
        window_unit="minutes",
        severity=Monitor.Severity.WARNING,
        alert_route=", ".join(sorted(routes))[:200],
    )
    save_versioned(monitor, None)
    messages.success(request, "Added a dead-letter volume monitor: check its threshold and route.")
    return redirect(STEPS_BY_NUMBER[6].url(project.pk, f"monitor-{monitor.pk}"))
