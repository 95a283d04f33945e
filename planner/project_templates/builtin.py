"""The built-in templates: the guides' scenarios, as snapshots `snapshot.instantiate` reads."""

from dataclasses import dataclass
from itertools import count

from planner.project_templates.snapshot import FORMAT

# A mapping row: source field, source type, target field, target type, max length,
# required, null rule, default, rule.
# fmt: off
CRM_TO_BILLING = [
    ("Id", "string", "customer_ref", "string", 18, True, "reject", "", "trim | upper"),
    ("Status__c", "string", "status_code", "integer", None, True, "reject", "",
     "trim | lower | map(active=1, inactive=0)"),
    ("Email", "string", "email", "string", 80, True, "reject", "",
     'trim | lower | regex("^[^@]+@[^@]+$") | max_length(80)'),
    ("Country", "string", "country", "string", 2, False, "default", "US",
     "trim | upper | substr(0, 2)"),
]
SUPPORT_TO_BILLING = [
    ("ticket_id", "string", "dispute_ref", "string", 20, True, "reject", "", "trim | upper"),
    ("customer_email", "string", "email", "string", 80, True, "reject", "",
     "trim | lower | max_length(80)"),
    ("priority", "string", "dispute_level", "integer", None, True, "default", "2",
     "trim | lower | map(urgent=1, high=1, normal=2, low=3)"),
]
# fmt: on
BASIC_MONITORS = [
    ("connectivity", "systems reachable", "availability_pct", "<", "100", "%"),
    ("error_rate", "error rate", "error_rate_pct", ">", "1", "%"),
    ("reconciliation", "records out of agreement", "mismatch_rate_pct", ">", "0.5", "%"),
]
TEST_CASES = [
    (1, "", "Both systems answer with the integration's credentials", "HTTP 200 from both"),
    (3, "", "A full customer record arrives in the target unchanged", "every mapped field equal"),
    (6, "target_down", "The target is down for 10 minutes", "no record lost; retried"),
    (6, "invalid_data", "A record with a malformed email", "rejected with its reason"),
    (6, "volume_spike", "Ten times the daily volume in one hour", "no backlog after 1 hour"),
]


@dataclass(frozen=True)
class BuiltIn:
    key: str
    title: str
    description: str
    snapshot: dict


def _snapshot(problem: str, objective: str, systems, connections, mappings, criteria) -> dict:
    refs = count(1)
    sys_ref = {name: next(refs) for name, _, _ in systems}
    conn_ref = {(s, t): next(refs) for s, t, *_ in connections}
    parts = {
        "systems": [
            {"ref": sys_ref[name], "name": name, "kind": kind, "owner": owner, "notes": ""}
            for name, kind, owner in systems
        ],
        "connections": [
            {
                "ref": conn_ref[(s, t)],
                "source": sys_ref[s],
                "target": sys_ref[t],
                "direction": direction,
                "trigger": trigger,
                "frequency": frequency,
                "volume_per_day": volume,
                "peak_per_day": volume * 2,
            }
            for s, t, direction, trigger, frequency, volume in connections
        ],
        "objective": [{"ref": next(refs), "business_objective": objective}],
        "criteria": [
            {
                "ref": next(refs),
                "metric": metric,
                "metric_key": key,
                "comparator": comparator,
                "target": target,
                "unit": unit,
                "position": i,
            }
            for i, (metric, key, comparator, target, unit) in enumerate(criteria)
        ],
        "mapping": [
            {
                "ref": next(refs),
                "connection": conn_ref[pair],
                "position": i,
                "source_field": sf,
                "source_type": st,
                "target_field": tf,
                "target_type": tt,
                "max_length": ml,
                "required": req,
                "null_rule": nr,
                "null_default": default,
                "rule": rule,
            }
            for pair, rows in mappings.items()
            for i, (sf, st, tf, tt, ml, req, nr, default, rule) in enumerate(rows)
        ],
        "test_plan": [{"ref": next(refs)}],
        "test_cases": [
            {
                "ref": next(refs),
                "stage": stage,
                "scenario": scenario,
                "position": i,
                "description": description,
                "pass_criterion": criterion,
            }
            for i, (stage, scenario, description, criterion) in enumerate(TEST_CASES)
        ],
        "monitors": [
            {
                "ref": next(refs),
                "kind": kind,
                "name": name,
                "metric_key": key,
                "comparator": comparator,
                "threshold": threshold,
                "unit": unit,
                "window_value": 15,
                "window_unit": "minutes",
            }
            for kind, name, key, comparator, threshold, unit in BASIC_MONITORS
        ],
        "rollback_steps": [
            {"ref": next(refs), "position": 1, "action": "Switch the integration off", "owner": ""},
            {"ref": next(refs), "position": 2, "action": "Restore the target from the backup"},
        ],
        "incidents": [
            {
                "ref": next(refs),
                "symptom": "Records stop arriving in the target",
                "to_check": "The connectivity monitor and the dead-letter queue",
                "fix": "Restart the integration; replay the dead letters",
                "escalation": "Integration owner",
            }
        ],
        "review_schedule": [{"ref": next(refs)}],
    }
    return {"format": FORMAT, "business_problem": problem, "parts": parts}


BUILT_IN: dict[str, BuiltIn] = {
    b.key: b
    for b in (
        BuiltIn(
            "crm-billing",
            "CRM → billing: customer status",
            "Two systems, one event-driven connection: customer status and contact details.",
            _snapshot(
                "Customers marked inactive in the CRM are still invoiced by billing.",
                "Billing reflects every CRM customer status change within minutes.",
                [("CRM", "crm", "Sales Ops"), ("Billing", "billing", "Finance")],
                [("CRM", "Billing", "one_way", "event", "real_time", 4000)],
                {("CRM", "Billing"): CRM_TO_BILLING},
                [
                    ("status sync latency", "external", "<=", "5", "minutes"),
                    ("records in sync", "agreement_pct", ">=", "99.5", "%"),
                ],
            ),
        ),
        BuiltIn(
            "support-billing",
            "Support ↔ billing: disputes",
            "Support tickets about invoices open disputes in billing; the outcome flows back.",
            _snapshot(
                "Invoice disputes raised with support never reach billing, so dunning continues.",
                "Every invoice dispute opened in support pauses dunning in billing the same day.",
                [("Helpdesk", "support", "Support"), ("Billing", "billing", "Finance")],
                [("Helpdesk", "Billing", "bidirectional", "event", "real_time", 300)],
                {("Helpdesk", "Billing"): SUPPORT_TO_BILLING},
                [("disputes in sync", "agreement_pct", ">=", "99", "%")],
            ),
        ),
        BuiltIn(
            "five-system-stack",
            "Five-system stack: CRM hub",
            "CRM at the centre of billing, support, marketing automation and analytics.",
            _snapshot(
                "Five systems each hold their own copy of the customer and none agree.",
                "One customer record, owned by the CRM, consistent in every system.",
                [
                    ("CRM", "crm", "Sales Ops"),
                    ("Billing", "billing", "Finance"),
                    ("Helpdesk", "support", "Support"),
                    ("Marketing", "marketing", "Marketing"),
                    ("Warehouse", "analytics", "Data team"),
                ],
                [
                    ("CRM", "Billing", "one_way", "event", "real_time", 4000),
                    ("CRM", "Helpdesk", "one_way", "event", "real_time", 4000),
                    ("CRM", "Marketing", "one_way", "schedule", "hourly", 20000),
                    ("CRM", "Warehouse", "one_way", "schedule", "daily", 50000),
                ],
                {("CRM", "Billing"): CRM_TO_BILLING},
                [
                    ("records in sync", "agreement_pct", ">=", "99.5", "%"),
                    ("error rate", "error_rate_pct", "<=", "0.5", "%"),
                ],
            ),
        ),
    )
}
