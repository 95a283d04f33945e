"""The guides' practices per connection in the API: owners, error handling, security and
personal data, backfill — the same records the step pages edit and readiness reads."""

from datetime import date

from django.utils import timezone
from ninja import Schema

from planner.checklist.evidence import Evidence
from planner.checklist.governance import inventory
from planner.checklist.practices import practices_of

from .views import Error, _access, api


class OwnersOut(Schema):
    data_owner: str
    integration_owner: str
    incident_resolver: str
    incident_contact: str


class ErrorHandlingOut(Schema):
    transient: list[str]
    fatal: list[str]
    retry_attempts: int | None = None
    backoff_seconds: int | None = None
    max_delay_seconds: int | None = None
    failed_records_to: str
    notify: str
    notify_within_minutes: int | None = None


class PersonalFieldOut(Schema):
    mapping_id: int
    source_field: str
    target_field: str
    purpose: str
    retention: str


class SecurityOut(Schema):
    authentication: str
    encrypted_in_transit: bool
    encrypted_at_rest: bool
    retention: str
    reviewed_on: date | None = None
    reviewer: str


class BackfillOut(Schema):
    no_history: bool
    no_history_reason: str
    record_count: int | None = None
    order: str
    throttle_per_minute: int | None = None
    window: str
    undo: str
    verification_run_id: int | None = None
    verification_status: str | None = None


class ConnectionPracticesOut(Schema):
    connection_id: int
    connection: str
    owners: OwnersOut | None = None
    error_handling: ErrorHandlingOut | None = None
    security: SecurityOut | None = None
    personal_fields: list[PersonalFieldOut]
    backfill: BackfillOut | None = None


class SystemProfileOut(Schema):
    system_id: int
    system: str
    api: str
    documentation: str
    rate_limits: str
    authentication: str
    environments: list[str]
    volume: str
    peak_periods: str


class RolloutPhaseOut(Schema):
    position: int
    audience: str
    canary_percent: float | None = None
    feature_flag: str
    blast_radius: str
    promote_on_criterion_id: int | None = None
    promote_on_monitor_id: int | None = None
    promotion_note: str
    rollback_trigger_id: int | None = None


def _fields(obj, schema: type[Schema], skip: frozenset | set = frozenset()) -> dict | None:
    if obj is None:
        return None
    return {name: getattr(obj, name) for name in schema.model_fields if name not in skip}


@api.get(
    "/projects/{project_id}/practices",
    response={200: list[ConnectionPracticesOut], 403: Error, 404: Error},
    summary="Per connection: owners, error handling, security and personal data, backfill",
)
def connection_practices(request, project_id: int):
    project = _access(request, project_id)
    ev = Evidence.load(project)
    p = practices_of(ev)
    out = []
    for c in ev.connections:
        backfill = p.backfills.get(c.pk)
        backfill_out = None
        if backfill is not None:
            run = backfill.verification_run if backfill.verification_run_id else None
            backfill_out = {
                **{
                    k: getattr(backfill, k)
                    for k in BackfillOut.model_fields
                    if hasattr(backfill, k)
                },
                "verification_status": run.status if run else None,
            }
        out.append(
            {
                "connection_id": c.pk,
                "connection": str(c),
                "owners": _fields(p.ownerships.get(c.pk), OwnersOut),
                "error_handling": _fields(p.strategies.get(c.pk), ErrorHandlingOut),
                "security": _fields(p.security.get(c.pk), SecurityOut),
                "personal_fields": [
                    {
                        "mapping_id": f.mapping_id,
                        "source_field": f.mapping.source_field,
                        "target_field": f.mapping.target_field,
                        "purpose": f.purpose,
                        "retention": f.retention,
                    }
                    for f in p.personal_of(c.pk)
                ],
                "backfill": backfill_out,
            }
        )
    return out


@api.get(
    "/projects/{project_id}/discovery",
    response={200: list[SystemProfileOut], 403: Error, 404: Error},
    summary="Per system: API, documentation, rate limits, authentication, environments, volume",
)
def system_discovery(request, project_id: int):
    ev = Evidence.load(_access(request, project_id))
    profiles = practices_of(ev).profiles
    return [
        {
            **_fields(profiles[s.pk], SystemProfileOut, skip={"system_id", "system"}),
            "system_id": s.pk,
            "system": str(s),
        }
        for s in ev.systems
        if s.pk in profiles
    ]


@api.get(
    "/projects/{project_id}/rollout",
    response={200: list[RolloutPhaseOut], 403: Error, 404: Error},
    summary="The phased rollout: audience, flag, blast radius, promotion and rollback per phase",
)
def rollout_phases(request, project_id: int):
    ev = Evidence.load(_access(request, project_id))
    return [_fields(p, RolloutPhaseOut) for p in practices_of(ev).phases]


class GovernanceOut(Schema):
    connection_id: int
    connection: str
    live: bool
    data_owner: str
    integration_owner: str
    incident_resolver: str
    slas: str
    retention: str
    personal_data: str
    last_review: date | None = None
    reviewer: str
    next_review_due: date | None = None
    review_status: str
    next_architecture_review: date | None = None


@api.get(
    "/projects/{project_id}/governance",
    response={200: list[GovernanceOut], 403: Error, 404: Error},
    summary="The project's rows of the governance inventory, with review due dates",
)
def project_governance(request, project_id: int):
    project = _access(request, project_id)
    rows = inventory([project], timezone.localdate())
    skip = {"connection_id", "connection"}
    return [
        {
            **_fields(r, GovernanceOut, skip=skip),
            "connection_id": r.connection.pk,
            "connection": str(r.connection),
        }
        for r in rows
    ]
