"""The seed scenarios that `make run` loads, idempotently."""

from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from planner.demo import data as demo_data
from planner.mapping.engine import MappingSpec
from planner.metrics.figures import match_metric
from planner.models import (
    BackfillPlan,
    ChangelogEntry,
    Connection,
    ConnectionOwnership,
    DataElement,
    ErrorStrategy,
    FieldMapping,
    Improvement,
    IntegrationProject,
    Membership,
    MetricKey,
    Objective,
    PatternDecision,
    PersonalField,
    Role,
    RolloutPhase,
    SecurityReview,
    SuccessCriterion,
    System,
    SystemEndpoint,
    SystemProfile,
    TrainingPlan,
)

DEMO_PASSWORD = "aethon-demo"  # noqa: S105 - a published demo login, local only
DEMO_USERS = {
    "demo": ("Dana Demo", "demo@example.com"),
    "approver": ("Alex Approver", "approver@example.com"),
    "viewer": ("Vic Viewer", "viewer@example.com"),
}

# The CRM -> billing mapping: (source, type, target, type, max length, required, null rule,
# default, rule). Id's max length is deliberately unchecked, so the demo shows a finding.
# fmt: off
CRM_BILLING_MAPPING = [
    ("Id", "string", "customer_ref", "string", 18, True, "reject", "", "trim | upper"),
    ("Status__c", "string", "status_code", "integer", None, True, "reject", "",
     "trim | lower | map(active=1, inactive=0)"),
    ("Email", "string", "email", "string", 80, True, "reject", "",
     'trim | lower | regex("^[^@]+@[^@]+$") | max_length(80)'),
    ("FirstName", "string", "full_name", "string", 120, False, "skip", "",
     'concat(FirstName, " ", LastName) | trim | max_length(120)'),
    ("Country", "string", "country", "string", 2, False, "default", "US",
     "trim | upper | substr(0, 2)"),
    ("Annual_Fee__c", "decimal", "annual_fee_usd", "decimal", None, False, "default",
     "0", 'currency("EUR", "USD", 1.08)'),
    ("Signup_Date__c", "date", "signup_epoch", "integer", None, False, "skip", "",
     'date("%Y-%m-%d") | epoch'),
]
# fmt: on

SCENARIOS = [
    {
        "name": "CRM to billing: customer status",
        "problem": "Sales marks customers inactive in the CRM but billing keeps invoicing them: "
        "the CRM says 'active'/'inactive', billing stores 1/0, and nobody owns the mapping.",
        "objective": "Billing reflects every CRM customer status change, so no inactive "
        "customer is invoiced.",
        "stakeholders": "Head of Sales Ops – CRM owner\nBilling lead – billing owner\n"
        "Finance controller",
        "systems": [("Salesforce CRM", "crm", "Sales Ops"), ("Billing", "billing", "Finance")],
        "connections": [("Salesforce CRM", "Billing", "one_way", "event", "real_time", 4000, 9000)],
        "criteria": [
            ("status sync latency", "<=", "5", "minutes", "99.9", 30, "days"),
            ("records in sync", ">=", "99.5", "%", None, 7, "days"),
        ],
        "elements": [("customer status", "Salesforce CRM"), ("customer email", "Salesforce CRM")],
        "decision": ("point_to_point", "Two systems: a direct event-driven link is simplest.", ""),
        "mappings": {("Salesforce CRM", "Billing"): CRM_BILLING_MAPPING},
        "sample_files": True,
        # The guides' practices on the one connection; the backfill awaits its verification
        # run, so the demo shows what the rule asks for.
        "profiles": {
            "Salesforce CRM": {
                "api": "rest",
                "documentation": "good",
                "rate_limits": "100,000 API calls a day; 25 concurrent",
                "authentication": "oauth_client",
                "environments": ["sandbox", "production"],
                "volume": "4,000 status changes a day",
                "peak_periods": "quarter end (9,000 a day)",
            },
            "Billing": {
                "api": "database",
                "documentation": "partial",
                "rate_limits": "none; batch writes outside 08:00-18:00",
                "authentication": "basic",
                "environments": ["test", "production"],
                "volume": "48,000 customers",
                "peak_periods": "invoice run on the 1st",
            },
        },
        # Step 7: the go-live is planned four weeks after loading, so the review dates and the
        # annual architecture review are shown.
        "training": {
            "guide": "Confluence: CRM → Billing status sync, user guide",
            "feedback_channel": "#crm-billing-sync",
            "demo_session": "Finance and Sales Ops, the Tuesday before go-live",
            "go_live_in_days": 28,
        },
        # After go-live (step 7): improvements tied to the KPI they should move (a criterion by
        # its position, or a figure), and what the team changed once live.
        "backlog": [
            (
                "Push status changes in batches of 200 at quarter end",
                0,
                "",
                1,
                "planned",
                "latency within 5 minutes at 9,000 changes a day",
            ),
            (
                "Alert on customers stuck in 'pending' for a day",
                None,
                "mismatch_rate_pct",
                2,
                "proposed",
                "mismatch rate below 0.1 %",
            ),
        ],
        "changelog": [
            (
                "Moved the nightly reconciliation to 02:00, after the invoice export",
                "The 23:00 run overlapped the export and reported its half-written rows.",
            ),
        ],
        "rollout": [
            ("Finance pilot: 50 customers", "billing-status-sync", "50 pilot invoices"),
            ("All EMEA customers", "billing-status-sync", "EMEA invoices"),
        ],
        "owners": {
            ("Salesforce CRM", "Billing"): (
                "Head of Sales Ops",
                "Integrations team (Dana)",
                "Integrations on-call",
                "#integrations-oncall, oncall@example.com",
            )
        },
        "error_handling": {
            ("Salesforce CRM", "Billing"): {
                "transient": ["timeout", "rate_limited", "server_error"],
                "fatal": ["validation", "schema_change"],
                "retry_attempts": 5,
                "backoff_seconds": 2,
                "max_delay_seconds": 300,
                "failed_records_to": "dead_letter",
                "notify": "Integrations on-call",
                "notify_within_minutes": 15,
            }
        },
        "security": {
            ("Salesforce CRM", "Billing"): {
                "authentication": "OAuth client credentials; read-only scope on Account",
                "encrypted_in_transit": True,
                "encrypted_at_rest": True,
                "retention": "7 years after the customer leaves (tax law), then deleted",
                "reviewed_on": date(2026, 10, 14),
                "reviewer": "Security lead",
            }
        },
        "personal": {
            ("Salesforce CRM", "Billing"): [
                ("email", "Invoice delivery", "7 years after the customer leaves"),
                ("full_name", "Invoice addressee", "7 years after the customer leaves"),
            ]
        },
        "backfill": {
            ("Salesforce CRM", "Billing"): {
                "record_count": 48000,
                "order": "Active customers first, then inactive, oldest first",
                "throttle_per_minute": 600,
                "window": "Saturday 22:00-06:00",
                "undo": "Delete the backfilled rows by their batch tag in billing",
            }
        },
    },
    {
        "name": "Support platform to billing: payment status",
        "problem": "Support agents cannot see whether a customer has paid, so they escalate "
        "tickets that billing already resolved.",
        "objective": "Agents see the current payment status in the ticket view.",
        "stakeholders": "Support manager\nBilling lead",
        "systems": [("Zendesk", "support", "Support"), ("Billing", "billing", "Finance")],
        "connections": [("Billing", "Zendesk", "one_way", "event", "real_time", 1500, 6000)],
        "criteria": [("payment status latency", "<=", "2", "minutes", "99.99", 30, "days")],
        "elements": [("payment status", "Billing")],
        "decision": None,
    },
    {
        "name": "Five-system revenue stack",
        "problem": "Five tools each hold a piece of the customer: leads, campaigns, invoices, "
        "tickets and reports disagree, and every new tool adds more one-off scripts.",
        "objective": "One consistent customer record across the stack, with reports that "
        "reconcile to billing.",
        "stakeholders": "COO\nRevOps\nMarketing ops\nSupport manager\nData lead",
        "systems": [
            ("HubSpot CRM", "crm", "RevOps"),
            ("Marketo", "marketing", "Marketing ops"),
            ("Chargebee", "billing", "Finance"),
            ("Freshdesk", "support", "Support"),
            ("Snowflake", "analytics", "Data"),
        ],
        "owners": {
            ("HubSpot CRM", "Chargebee"): ("RevOps", "Integrations team", "RevOps on-call", ""),
        },
        "backfill_none": {
            ("HubSpot CRM", "Snowflake"): "Snowflake loads the full history every night.",
        },
        "connections": [
            ("HubSpot CRM", "Chargebee", "bidirectional", "event", "real_time", 3000, 20000),
            ("Marketo", "HubSpot CRM", "one_way", "schedule", "hourly", 10000, 25000),
            ("Chargebee", "Freshdesk", "one_way", "event", "real_time", 1500, 3000),
            ("HubSpot CRM", "Snowflake", "one_way", "schedule", "daily", 50000, 60000),
            ("Chargebee", "Snowflake", "one_way", "schedule", "daily", 20000, 30000),
            ("Freshdesk", "Snowflake", "one_way", "schedule", "daily", 5000, 8000),
        ],
        "criteria": [
            ("customer record consistency", ">=", "99.5", "%", None, 30, "days"),
            ("sync error rate", "<=", "1", "%", None, 5, "minutes"),
        ],
        "elements": [
            ("customer", "HubSpot CRM"),
            ("invoice", "Chargebee"),
            ("campaign", "Marketo"),
            ("ticket", None),
        ],
        "decision": None,
    },
]


def _users():
    User = get_user_model()
    users = {}
    for username, (full_name, email) in DEMO_USERS.items():
        user, created = User.objects.get_or_create(
            username=username,
            # The demo's own user is staff, so the People page shows in the demo.
            defaults={
                "email": email,
                "first_name": full_name.split()[0],
                "is_staff": username == "demo",
            },
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        users[username] = user
    return users


def _scenario(spec: dict, users: dict) -> IntegrationProject:
    project = IntegrationProject.objects.filter(name=spec["name"]).first()
    if project is not None:
        return project
    project = IntegrationProject.objects.create(
        name=spec["name"], business_problem=spec["problem"], owner=users["demo"]
    )
    for username, role in (
        ("demo", Role.OWNER),
        ("approver", Role.APPROVER),
        ("viewer", Role.VIEWER),
    ):
        Membership.objects.create(project=project, user=users[username], role=role)
    Objective.objects.create(
        project=project,
        business_objective=spec["objective"],
        stakeholders_consulted=spec["stakeholders"],
    )
    systems = {
        name: System.objects.create(project=project, name=name, kind=kind, owner=owner)
        for name, kind, owner in spec["systems"]
    }
    for src, dst, direction, trigger, freq, volume, peak in spec["connections"]:
        Connection.objects.create(
            project=project,
            source=systems[src],
            target=systems[dst],
            direction=direction,
            trigger=trigger,
            frequency=freq,
            volume_per_day=volume,
            peak_per_day=peak,
        )
    for position, (metric, cmp, target, unit, pct, window, wunit) in enumerate(spec["criteria"]):
        # The figure the text names; anything runs do not measure is measured outside Aethon.
        match = match_metric(metric, unit)
        if match.key is not None and match.factor != 1:
            target, unit = str(Decimal(target) * 1000), "ms"
        SuccessCriterion.objects.create(
            project=project,
            metric=metric,
            metric_key=str(match.key or MetricKey.EXTERNAL),
            comparator=cmp,
            target=Decimal(target),
            unit=unit,
            attainment_pct=Decimal(pct) if pct else None,
            window_value=window,
            window_unit=wunit,
            position=position,
        )
    for name, truth in spec["elements"]:
        DataElement.objects.create(
            project=project, name=name, source_of_truth=systems.get(truth) if truth else None
        )
    for (src, dst), rows in spec.get("mappings", {}).items():
        connection = Connection.objects.get(
            project=project, source=systems[src], target=systems[dst]
        )
        for position, row in enumerate(rows, start=1):
            source, stype, target, ttype, length, required, null_rule, default, rule = row
            FieldMapping.objects.create(
                project=project,
                connection=connection,
                position=position,
                source_field=source,
                source_type=stype,
                target_field=target,
                target_type=ttype,
                max_length=length,
                required=required,
                null_rule=null_rule,
                null_default=default,
                rule=rule,
            )
    _practices(project, spec, systems)
    if spec.get("sample_files"):
        _sample_endpoints(project, systems["Salesforce CRM"], systems["Billing"])
    if spec["decision"]:
        pattern, rationale, tools = spec["decision"]
        PatternDecision.objects.create(
            project=project, pattern=pattern, rationale=rationale, tools=tools
        )
    return project


def _practices(project: IntegrationProject, spec: dict, systems: dict) -> None:
    """Owners, error handling, security, personal data and backfill of the spec's connections."""

    def connection(pair):
        src, dst = pair
        return Connection.objects.get(project=project, source=systems[src], target=systems[dst])

    for name, fields in spec.get("profiles", {}).items():
        SystemProfile.objects.create(project=project, system=systems[name], **fields)
    for position, (audience, flag, radius) in enumerate(spec.get("rollout", []), start=1):
        RolloutPhase.objects.create(
            project=project,
            position=position,
            audience=audience,
            feature_flag=flag,
            blast_radius=radius,
        )
    for pair, (data, integration, resolver, contact) in spec.get("owners", {}).items():
        ConnectionOwnership.objects.create(
            project=project,
            connection=connection(pair),
            data_owner=data,
            integration_owner=integration,
            incident_resolver=resolver,
            incident_contact=contact,
        )
    for pair, fields in spec.get("error_handling", {}).items():
        ErrorStrategy.objects.create(project=project, connection=connection(pair), **fields)
    for pair, fields in spec.get("security", {}).items():
        SecurityReview.objects.create(project=project, connection=connection(pair), **fields)
    for pair, rows in spec.get("personal", {}).items():
        for target, purpose, retention in rows:
            mapping = FieldMapping.objects.get(connection=connection(pair), target_field=target)
            PersonalField.objects.create(
                project=project, mapping=mapping, purpose=purpose, retention=retention
            )
    _aftercare(project, spec)
    for pair, fields in spec.get("backfill", {}).items():
        BackfillPlan.objects.create(project=project, connection=connection(pair), **fields)
    for pair, reason in spec.get("backfill_none", {}).items():
        BackfillPlan.objects.create(
            project=project, connection=connection(pair), no_history=True, no_history_reason=reason
        )


def _aftercare(project: IntegrationProject, spec: dict) -> None:
    """The training plan, the improvement backlog and the changelog written by the team."""
    if "training" in spec:
        fields = dict(spec["training"])
        days = fields.pop("go_live_in_days")
        TrainingPlan.objects.create(
            project=project, go_live_on=timezone.localdate() + timedelta(days=days), **fields
        )
    criteria = list(SuccessCriterion.objects.filter(project=project).order_by("position"))
    for title, criterion, metric_key, priority, status, effect in spec.get("backlog", []):
        Improvement.objects.create(
            project=project,
            title=title,
            criterion=criteria[criterion] if criterion is not None else None,
            metric_key=metric_key,
            priority=priority,
            status=status,
            expected_effect=effect,
        )
    for summary, detail in spec.get("changelog", []):
        ChangelogEntry.objects.create(
            project=project, author=project.owner, summary=summary, detail=detail
        )


def _sample_endpoints(project: IntegrationProject, crm: System, billing: System) -> None:
    """Both systems as uploaded CSV files, so 'Run validation' works in the demo at once."""
    specs = [
        MappingSpec(src, dst, st, tt, length, required, null_rule, default, rule)
        for src, st, dst, tt, length, required, null_rule, default, rule in CRM_BILLING_MAPPING
    ]
    source = demo_data.crm_records()
    files = {
        crm: ("salesforce-customers.csv", demo_data.to_csv(source), "Id"),
        billing: (
            "billing-customers.csv",
            demo_data.to_csv(demo_data.billing_records(source, specs)),
            "customer_ref",
        ),
    }
    for system, (name, content, key) in files.items():
        endpoint = SystemEndpoint(
            project=project,
            system=system,
            kind=SystemEndpoint.Kind.FILE,
            config={"format": "csv", "infer_types": False},
            key_fields=key,
            upload_name=name,
        )
        endpoint.upload.save(name, ContentFile(content), save=False)
        endpoint.save()


@transaction.atomic
def load_demo() -> list[IntegrationProject]:
    users = _users()
    return [_scenario(spec, users) for spec in SCENARIOS]
