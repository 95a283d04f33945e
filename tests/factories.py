from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from planner.metrics.figures import default_monitor_metric, match_metric
from planner.models import (
    ChangelogEntry,
    Connection,
    DataElement,
    DeploymentPlan,
    FieldMapping,
    FreshnessSettings,
    Improvement,
    IncidentEntry,
    IntegrationProject,
    Membership,
    MetricKey,
    Monitor,
    Objective,
    PatternDecision,
    Role,
    RollbackStep,
    RollbackTrigger,
    RunbookExport,
    SignOff,
    SuccessCriterion,
    System,
    SystemEndpoint,
    TestCase,
    TrainingPlan,
    ValidationRun,
)
from planner.models.practices import (
    BackfillPlan,
    ConnectionOwnership,
    ErrorStrategy,
    PersonalField,
    RolloutPhase,
    SecurityReview,
    SystemProfile,
)
from planner.runs import service as validation

PASSWORD = "correct-horse-battery"  # noqa: S105


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IntegrationProject
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Integration {n}")
    business_problem = "Statuses disagree between CRM and billing."
    owner = factory.SubFactory(UserFactory)

    @factory.post_generation
    def owner_membership(obj, create, extracted, **kwargs):
        if create:
            Membership.objects.create(project=obj, user=obj.owner, role=Role.OWNER)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.VIEWER


class SystemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = System

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"System {n}")
    kind = System.Kind.CRM
    owner = "Ops"


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    project = factory.SubFactory(ProjectFactory)
    source = factory.SubFactory(SystemFactory, project=factory.SelfAttribute("..project"))
    target = factory.SubFactory(SystemFactory, project=factory.SelfAttribute("..project"))
    volume_per_day = 1000
    peak_per_day = 2000


class ObjectiveFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Objective

    project = factory.SubFactory(ProjectFactory)
    business_objective = "No inactive customer is invoiced."


class CriterionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SuccessCriterion

    project = factory.SubFactory(ProjectFactory)
    metric = "sync latency"
    # The figure today's keyword matching gives the metric; else measured outside Aethon.
    metric_key = factory.LazyAttribute(
        lambda o: str(match_metric(o.metric, o.unit).key or MetricKey.EXTERNAL)
    )
    comparator = "<="
    target = Decimal("5")
    unit = "minutes"
    attainment_pct = Decimal("99.9")
    window_value = 30
    window_unit = "days"


class DataElementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataElement

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"element {n}")
    source_of_truth = factory.SubFactory(SystemFactory, project=factory.SelfAttribute("..project"))


class DecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PatternDecision

    project = factory.SubFactory(ProjectFactory)
    pattern = PatternDecision.Pattern.HUB_AND_SPOKE
    rationale = "Five systems and growing."


class FieldMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FieldMapping

    project = factory.SubFactory(ProjectFactory)
    connection = factory.SubFactory(ConnectionFactory, project=factory.SelfAttribute("..project"))
    position = factory.Sequence(lambda n: n + 1)
    source_field = factory.Sequence(lambda n: f"src_{n}")
    target_field = factory.Sequence(lambda n: f"dst_{n}")
    source_type = "string"
    target_type = "string"
    null_rule = "reject"
    rule = "trim"


# Steps 4 to 7, sign-offs and runbook exports.
class TestCaseFactory(factory.django.DjangoModelFactory):
    __test__ = False

    class Meta:
        model = TestCase

    project = factory.SubFactory(ProjectFactory)
    stage = 1
    description = factory.Sequence(lambda n: f"case {n}")
    data_set = "10 customers from staging"
    expected_result = "All arrive unchanged"
    pass_criterion = "0 rejected records"
    owner = "QA"
    status = TestCase.Status.PLANNED


class RollbackTriggerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RollbackTrigger

    project = factory.SubFactory(ProjectFactory)
    metric = "error rate"
    comparator = ">"
    threshold = Decimal("5")
    unit = "%"
    window_value = 15
    window_unit = "minutes"


class RollbackStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RollbackStep

    project = factory.SubFactory(ProjectFactory)
    position = factory.Sequence(lambda n: n + 1)
    action = "Turn the feature flag off"
    owner = "Ops"
    expected_minutes = 5


class DeploymentPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeploymentPlan

    project = factory.SubFactory(ProjectFactory)
    pipeline = "build\ntest\ndeploy"
    rollout = DeploymentPlan.Rollout.FEATURE_FLAG


class MonitorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Monitor

    project = factory.SubFactory(ProjectFactory)
    kind = Monitor.Kind.ERROR_RATE
    name = "error rate"
    comparator = ">"
    metric_key = factory.LazyAttribute(
        lambda o: (
            o.criterion.metric_key
            if o.criterion is not None
            else str(default_monitor_metric(o.kind, o.comparator, o.unit, o.name).key or "")
        )
    )
    criterion = None
    threshold = Decimal("1")
    unit = "%"
    window_value = 5
    window_unit = "minutes"
    severity = Monitor.Severity.CRITICAL
    alert_route = "PagerDuty: integrations"


class TrainingPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrainingPlan

    project = factory.SubFactory(ProjectFactory)
    guide = "https://wiki.example.com/sync-guide"
    feedback_channel = "#crm-billing-sync"


class ImprovementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Improvement

    project = factory.SubFactory(ProjectFactory)
    title = "Retry 429s with jitter"
    metric_key = "error_rate_pct"
    expected_effect = "error rate below 0.5 %"


class ChangelogEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChangelogEntry

    project = factory.SubFactory(ProjectFactory)
    summary = "Raised the batch size to 500"


class IncidentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IncidentEntry

    project = factory.SubFactory(ProjectFactory)
    symptom = "Statuses stop syncing"
    to_check = "Connector health page"
    fix = "Restart the connector"
    escalation = "Integration on-call"


class SignOffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SignOff

    project = factory.SubFactory(ProjectFactory)
    step = 1
    user = factory.SubFactory(UserFactory)
    role = Role.APPROVER
    decision = SignOff.Decision.APPROVE
    content_hash = "0" * 64


class RunbookExportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RunbookExport

    project = factory.SubFactory(ProjectFactory)
    version_hash = "f" * 64


def fill_steps_4_to_7(project, criteria=()) -> None:
    """Steps 4 to 7 with every content rule passing (sign-offs aside)."""
    from planner.models.testing import REQUIRED_SCENARIOS, TestStage

    for stage in TestStage:
        if stage == TestStage.ERRORS:
            for scenario in REQUIRED_SCENARIOS:
                TestCaseFactory(
                    project=project,
                    stage=stage,
                    scenario=scenario,
                    description=f"errors: {scenario.label}",
                    status=TestCase.Status.PASSED,
                    evidence_note="run log attached to ticket QA-12",
                )
        else:
            TestCaseFactory(
                project=project,
                stage=stage,
                description=f"{stage.label} works",
                status=TestCase.Status.PASSED,
                evidence_note="screenshot in QA-12",
            )
    RollbackTriggerFactory(project=project)
    RollbackStepFactory(project=project, position=1)
    RollbackStepFactory(project=project, position=2, action="Replay the change log")
    DeploymentPlanFactory(
        project=project,
        rehearsed_on="2026-11-01",
        rehearsal_result=DeploymentPlan.Rehearsal.SUCCEEDED,
    )
    for kind in ("connectivity", "throughput", "error_rate", "data_quality"):
        MonitorFactory(project=project, kind=kind, name=f"{kind} check")
    for criterion in criteria:
        MonitorFactory(
            project=project, kind="criterion", name=criterion.metric, criterion=criterion
        )
    TrainingPlanFactory(project=project)
    IncidentFactory(project=project)
    fill_practices(project)


# --- the guides' practices, per connection ----------------------------------------------------


class OwnershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConnectionOwnership

    connection = factory.SubFactory(ConnectionFactory)
    project = factory.SelfAttribute("connection.project")
    data_owner = "Sales Ops"
    integration_owner = "Integrations team"
    incident_resolver = "Integrations on-call"
    incident_contact = "oncall@example.com"


class FreshnessSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FreshnessSettings

    connection = factory.SubFactory(ConnectionFactory)
    project = factory.SelfAttribute("connection.project")
    source_time_field = "updated_at"
    target_time_field = "synced_at"
    skew_seconds = 5


class ErrorStrategyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ErrorStrategy

    connection = factory.SubFactory(ConnectionFactory)
    project = factory.SelfAttribute("connection.project")
    transient = factory.LazyFunction(lambda: ["timeout"])
    fatal = factory.LazyFunction(lambda: ["validation"])
    retry_attempts = 5
    backoff_seconds = 2
    max_delay_seconds = 300
    failed_records_to = ErrorStrategy.Destination.DEAD_LETTER
    notify = "Integrations on-call"
    notify_within_minutes = 15


class SecurityReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SecurityReview

    connection = factory.SubFactory(ConnectionFactory)
    project = factory.SelfAttribute("connection.project")
    authentication = "OAuth client credentials, read-only scope"
    encrypted_in_transit = True
    encrypted_at_rest = True
    retention = "7 years"
    reviewed_on = "2026-10-01"
    reviewer = "Security lead"


class PersonalFieldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PersonalField

    project = factory.SelfAttribute("mapping.project")
    purpose = "Invoice delivery"
    retention = "7 years"


class BackfillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BackfillPlan

    connection = factory.SubFactory(ConnectionFactory)
    project = factory.SelfAttribute("connection.project")
    no_history = True
    no_history_reason = "The target starts empty by design."


class SystemProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SystemProfile

    system = factory.SubFactory(SystemFactory)
    project = factory.SelfAttribute("system.project")
    api = SystemProfile.Api.REST
    documentation = SystemProfile.Docs.GOOD
    rate_limits = "100 requests / 10 s"
    authentication = SystemProfile.Auth.OAUTH
    environments = factory.LazyFunction(lambda: ["sandbox", "production"])
    volume = "4,000 records a day"
    peak_periods = "month end"


class RolloutPhaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RolloutPhase

    project = factory.SubFactory(ProjectFactory)
    position = 1
    audience = "EMEA sales team"
    feature_flag = "billing-sync"
    blast_radius = "EMEA invoices only"
    rollback_trigger = factory.SubFactory(
        RollbackTriggerFactory, project=factory.SelfAttribute("..project")
    )
    promote_on_monitor = factory.SubFactory(
        MonitorFactory, project=factory.SelfAttribute("..project")
    )


def fill_practices(project) -> None:
    """Owners, error handling (with its test cases and monitor) and backfill for every
    connection of `project`, so the guides' rules pass."""
    from planner.checklist import practices as guides
    from planner.checklist.evidence import Evidence

    connections = Connection.objects.filter(project=project)
    for connection in connections.filter(ownership__isnull=True):
        OwnershipFactory(connection=connection)
    for connection in connections.filter(error_strategy__isnull=True):
        ErrorStrategyFactory(connection=connection)
    for connection in connections.filter(backfill_plan__isnull=True):
        BackfillFactory(connection=connection)
    for strategy, code in guides.missing_error_cases(Evidence.load(project)):
        case = guides.case_for(strategy, code)
        case.status = TestCase.Status.PASSED
        case.evidence_note = "failure injected in staging, see QA-14"
        case.save()
    for system in System.objects.filter(project=project, profile__isnull=True):
        SystemProfileFactory(system=system)
    if not RolloutPhase.objects.filter(project=project).exists():
        RolloutPhaseFactory(
            project=project,
            rollback_trigger=RollbackTrigger.objects.filter(project=project).first()
            or RollbackTriggerFactory(project=project),
            promote_on_monitor=Monitor.objects.filter(project=project).first()
            or MonitorFactory(project=project),
        )
    watched = Monitor.objects.filter(project=project, kind="dead_letter").exists()
    if connections.exists() and not watched:
        MonitorFactory(project=project, kind="dead_letter", name="failed records set aside")


# --- validation runs -------------------------------------------------------------------------


class SystemEndpointFactory(factory.django.DjangoModelFactory):
    """Connection settings; a CSV upload by default (pass `csv=` to choose its text)."""

    class Meta:
        model = SystemEndpoint
        exclude = ("csv",)

    system = factory.SubFactory(SystemFactory)
    project = factory.SelfAttribute("system.project")
    kind = SystemEndpoint.Kind.FILE
    config = factory.LazyAttribute(lambda o: {"infer_types": True} if o.kind == "file" else {})
    key_fields = "id"
    csv = "id,name\n1,Ada\n"
    upload = factory.LazyAttribute(
        lambda o: (
            ContentFile(o.csv.encode(), name="records.csv")
            if o.kind == SystemEndpoint.Kind.FILE
            else ""
        )
    )
    upload_name = factory.LazyAttribute(lambda o: "records.csv" if o.upload else "")


class ValidationRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ValidationRun

    project = factory.SubFactory(ProjectFactory)
    connection = factory.SubFactory(ConnectionFactory, project=factory.SelfAttribute("..project"))


def waive_signoff(project, *steps: int) -> None:
    """Let `steps` of `project` complete on their rules alone (no approver needed)."""
    from planner.models import ApproverRequirement

    for number in steps:
        ApproverRequirement.objects.update_or_create(
            project=project, step=number, defaults={"roles": []}
        )


def approve_step(project, number: int, membership=None):
    """Sign step `number` off as an approver (a new one unless `membership` is given)."""
    from planner.checklist.signoff import sign, step_hashes

    membership = membership or MembershipFactory(project=project, role=Role.APPROVER)
    return sign(project, number, membership, "approve", "", step_hashes(project, [number])[number])


# ---------------------------------------------------------------------------------------------
# A connection between two CSV-upload systems with a three-row mapping, and a project that is
# ready to go live on it (used by the run, review, API and browser tests).

SOURCE_CSV = (
    "id,status,email,name\n"
    "1,active,ADA@EXAMPLE.COM ,Ada\n"
    "2,inactive,grace@example.com,Grace\n"
    "3,pending,linus@example.com,Linus\n"
    "4,active,ken@example.com,Ken\n"
)

TARGET_CSV = (
    "id,active,email\n"
    "1,1,ada@example.com\n"
    "2,0,grace@example.org\n"
    "3,,linus@example.com\n"
    "5,1,x@example.com\n"
)

CLEAN_TARGET_CSV = "id,active,email\n1,1,ada@example.com\n2,0,grace@example.com\n"

CLEAN_SOURCE_CSV = "id,status,email\n1,active,Ada@example.com\n2,inactive,grace@example.com\n"


def csv_connection(source_csv=SOURCE_CSV, target_csv=TARGET_CSV, project=None):
    project = project or ProjectFactory()
    source = SystemFactory(project=project, name="CRM")
    target = SystemFactory(project=project, name="Billing")
    SystemEndpointFactory(system=source, csv=source_csv)
    SystemEndpointFactory(system=target, csv=target_csv)
    connection = ConnectionFactory(project=project, source=source, target=target)
    rows = [
        ("id", "id", "integer", "integer", "identity", True),
        ("status", "active", "string", "integer", "map(active=1, inactive=0)", False),
        ("email", "email", "string", "string", "trim | lower", False),
    ]
    for i, (src, dst, st, tt, rule, required) in enumerate(rows):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=src,
            target_field=dst,
            source_type=st,
            target_type=tt,
            rule=rule,
            required=required,
            null_rule="reject" if required else "skip",
        )
    return connection


def ready_project(target_csv=CLEAN_TARGET_CSV):
    project = ProjectFactory(name="CRM to billing")
    connection = csv_connection(CLEAN_SOURCE_CSV, target_csv, project=project)
    ObjectiveFactory(project=project)
    met = CriterionFactory(
        project=project, metric="mismatch rate", comparator="<=", target=Decimal("1"), unit="%"
    )
    # Sync latency in minutes is not measured by runs: the team recorded it by hand.
    latency = CriterionFactory(
        project=project,
        evidence_value=Decimal("3"),
        evidence_date=timezone.localdate(),
        evidence_note="load test report",
    )
    DataElementFactory(project=project, source_of_truth=connection.source)
    DecisionFactory(project=project)
    fill_steps_4_to_7(project, criteria=[met, latency])
    waive_signoff(project, 1, 2, 3, 4, 5, 6, 7)
    # Alert when fewer than 1 record is in agreement (the factory's default alerts on more).
    Monitor.objects.filter(project=project, kind="throughput").update(comparator="<")
    run = validation.start_validation_run(connection, project.owner)
    validation.execute_run(run.pk, heartbeat=False)
    return project, connection


def id_and_email_mapping(connection) -> None:
    """Two mapping rows: the integer key `id` as is, `email` trimmed and lower-cased."""
    FieldMappingFactory(
        project=connection.project,
        connection=connection,
        source_field="id",
        target_field="id",
        source_type="integer",
        target_type="integer",
        rule="identity",
    )
    FieldMappingFactory(
        project=connection.project,
        connection=connection,
        source_field="email",
        target_field="email",
        rule="trim | lower",
    )


def run_now(connection, published, **kwargs):
    """Start a run as the connection's owner and execute it here, as a worker would."""
    from planner.runs import service as validation

    run = validation.start_validation_run(connection, connection.project.owner, **kwargs)
    assert published[-1] == run.pk
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    return run


def inline_workers(monkeypatch) -> list:
    """Runs and reviews execute in the test thread as a worker would (no broker, no heartbeat
    thread); a review's next check is recorded in the returned list instead of queued."""
    from planner.reviews import service as reviews

    checks: list = []
    monkeypatch.setattr(
        validation, "dispatch", lambda run: validation.execute_run(run.pk, heartbeat=False)
    )
    monkeypatch.setattr(reviews, "dispatch", lambda review: reviews.run_review(review.pk))
    monkeypatch.setattr(reviews, "schedule_check", lambda review: checks.append(review.pk))
    return checks


def configured(connection):
    """Give both systems of `connection` connection settings (a small CSV), so runs may start."""
    for system in (connection.source, connection.target):
        if not SystemEndpoint.objects.filter(system=system).exists():
            SystemEndpointFactory(system=system, csv="id\n1\n")
    return connection


# ---------------------------------------------------------------------------------------------
# Projects for the portfolio: something in every place the go-live verdict reads.


def portfolio_project(owner, variant: int = 0):
    """A project of `owner` with a plan through step 7, runs with stages, sign-offs, a
    propagation-lag criterion with measurements and the parallel-run gate on it. `variant`
    turns the optional parts: its latest run failed (odd), a go-live in force (multiple of 3),
    an approval that went stale (multiple of 4), a step approved by its last editor alone
    (multiple of 5)."""
    from datetime import timedelta

    from planner.checklist.signoff import step_hashes
    from planner.models import (
        ApproverRequirement,
        GoLive,
        RunStage,
        SignOffStale,
        SliPoint,
        TestPlan,
    )

    project = ProjectFactory(owner=owner, name=f"Portfolio {variant:03d}")
    connection = ConnectionFactory(project=project)
    FieldMappingFactory(project=project, connection=connection)
    FieldMappingFactory(project=project, connection=connection, rule="", null_rule="")
    ObjectiveFactory(project=project)
    agreement = CriterionFactory(
        project=project, metric="records in agreement", comparator=">=", target=99, unit="%"
    )
    lag = CriterionFactory(
        project=project,
        metric="propagation lag",
        metric_key=MetricKey.FRESHNESS,
        unit="minutes",
        freshness_connection=connection,
    )
    DataElementFactory(project=project, source_of_truth=connection.source)
    DecisionFactory(project=project)
    fill_steps_4_to_7(project, criteria=[agreement, lag])
    TestPlan.objects.create(project=project, gate_criterion=lag, gate_days=7)
    now = timezone.now()
    SliPoint.objects.bulk_create(
        SliPoint(criterion=lag, at=now - timedelta(hours=h), good=99 - variant % 2, total=100)
        for h in range(1, 48)
    )
    for age, status in ((3, "passed"), (1, "failed" if variant % 2 else "passed")):
        when = now - timedelta(days=age)
        run = ValidationRunFactory(
            project=project, connection=connection, status=status, created_at=when
        )
        ValidationRun.objects.filter(pk=run.pk).update(finished_at=when)
        RunStage.objects.create(
            run=run,
            name="reconciliation",
            position=1,
            status=status,
            figures={"source_count": 10, "matched_count": 10, "equal_count": 10 - variant % 2},
        )
    approver = MembershipFactory(project=project, role=Role.APPROVER)
    hashes = step_hashes(project)
    SignOffFactory(project=project, step=3, user=approver.user, content_hash=hashes[3])
    if variant % 5 == 0:
        ApproverRequirement.objects.create(project=project, step=6, roles=[Role.OWNER])
        SignOffFactory(project=project, step=6, user=owner, role=Role.OWNER, content_hash=hashes[6])
    stale = SignOffFactory(project=project, step=1, user=approver.user, content_hash=hashes[1])
    if variant % 4 == 0:
        CriterionFactory(project=project, metric="added after the approval")
        SignOffStale.objects.create(
            project=project, signoff=stale, step=1, current_hash=step_hashes(project, [1])[1]
        )
    if variant % 3 == 0:
        GoLive.objects.create(project=project, user=owner, created_at=now - timedelta(days=40))
    return project
