"""The guides' practices per connection: owners, error handling, security and personal data,
backfill — their rules, forms, one-click actions, runbook sections, sign-off hash and API."""

from django.urls import reverse

from planner.api.tokens import create_token
from planner.checklist.readiness import project_readiness
from planner.checklist.signoff import step_hashes
from planner.models import (
    BackfillPlan,
    ConnectionOwnership,
    ErrorStrategy,
    Monitor,
    PersonalField,
    RolloutPhase,
    SystemProfile,
    TestCase,
)
from planner.models.testing import ErrorScenario
from planner.models.testing import TestStage as Stage
from planner.runbook.service import render_html
from tests.conftest import HTMX, client_for
from tests.factories import (
    BackfillFactory,
    ConnectionFactory,
    CriterionFactory,
    ErrorStrategyFactory,
    FieldMappingFactory,
    MonitorFactory,
    OwnershipFactory,
    PersonalFieldFactory,
    ProjectFactory,
    RollbackTriggerFactory,
    RolloutPhaseFactory,
    SecurityReviewFactory,
    SystemFactory,
    SystemProfileFactory,
    ValidationRunFactory,
)


def failing(project, number):
    r = project_readiness(project).for_step(number)
    return {o.rule.code for o in r.outcomes if not o.passed}


def findings(project, number, code):
    r = project_readiness(project).for_step(number)
    return [f.text for o in r.outcomes if o.rule.code == code for f in o.findings]


def add_url(kind, project):
    return reverse(f"planner:{kind}_add", args=[project.pk])


# Ownership ------------------------------------------------------------------------------------


def test_every_connection_needs_its_three_owners_and_a_contact(project):
    connection = ConnectionFactory(project=project)
    assert findings(project, 1, "connection_owners") == [f"{connection} has no owners."]
    owners = OwnershipFactory(connection=connection, integration_owner="", incident_contact="")
    assert findings(project, 1, "connection_owners") == [
        f"{connection} has no integration owner, incident contact."
    ]
    owners.integration_owner, owners.incident_contact = "Integrations team", "#oncall"
    owners.save()
    assert "connection_owners" not in failing(project, 1)


def test_owners_are_added_on_step_1_once_per_connection(project, owner_client):
    connection = ConnectionFactory(project=project)
    data = {
        "add-ownership-connection": connection.pk,
        "add-ownership-data_owner": "Sales Ops",
        "add-ownership-integration_owner": "Dana",
        "add-ownership-incident_resolver": "Integrations on-call",
        "add-ownership-incident_contact": "oncall@example.com",
    }
    html = owner_client.post(add_url("ownership", project), data, **HTMX).content.decode()
    assert "Integrations on-call" in html
    assert ConnectionOwnership.objects.get(connection=connection).data_owner == "Sales Ops"
    html = owner_client.post(add_url("ownership", project), data, **HTMX).content.decode()
    assert f"{connection} already has one; edit it instead of adding another." in html
    assert ConnectionOwnership.objects.count() == 1
    # Another project's connection is not a choice.
    other = ConnectionFactory()
    data["add-ownership-connection"] = other.pk
    html = owner_client.post(add_url("ownership", project), data, **HTMX).content.decode()
    assert "Connection: Select a valid choice" in html
    assert ConnectionOwnership.objects.count() == 1


# Error handling -------------------------------------------------------------------------------


def strategy_data(connection, **overrides):
    data = {
        "add-errorstrategy-connection": connection.pk,
        "add-errorstrategy-transient": ["timeout", "rate_limited"],
        "add-errorstrategy-fatal": ["schema_change"],
        "add-errorstrategy-retry_attempts": "5",
        "add-errorstrategy-backoff_seconds": "2",
        "add-errorstrategy-max_delay_seconds": "300",
        "add-errorstrategy-failed_records_to": "dead_letter",
        "add-errorstrategy-notify": "Integrations on-call",
        "add-errorstrategy-notify_within_minutes": "15",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_every_connection_needs_an_error_handling_strategy(project):
    connection = ConnectionFactory(project=project)
    assert findings(project, 2, "error_strategies") == [
        f"{connection} has no error-handling strategy."
    ]
    strategy = ErrorStrategyFactory(connection=connection, notify="", failed_records_to="")
    assert findings(project, 2, "error_strategies") == [
        f"{connection}'s error handling lacks where failed records go, who is notified and "
        "how fast."
    ]
    strategy.notify, strategy.failed_records_to = "On-call", "error_table"
    strategy.save()
    assert "error_strategies" not in failing(project, 2)


def test_bad_error_handling_input_names_the_field_and_saves_nothing(project, owner_client):
    connection = ConnectionFactory(project=project)
    url = add_url("errorstrategy", project)
    data = strategy_data(connection, **{"add-errorstrategy-transient": None})
    data.pop("add-errorstrategy-fatal")
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "Tick at least one failure class, transient or fatal." in html
    data = strategy_data(connection, **{"add-errorstrategy-retry_attempts": ""})
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "Retry attempts: Transient failures are retried: how many times?" in html
    data = strategy_data(connection, **{"add-errorstrategy-max_delay_seconds": "1"})
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "The max delay cannot be below the first backoff." in html
    data = strategy_data(connection, **{"add-errorstrategy-fatal": ["reboot"]})
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "Select a valid choice. reboot is not one of the available choices." in html
    assert not ErrorStrategy.objects.exists()
    owner_client.post(url, strategy_data(connection), **HTMX)
    s = ErrorStrategy.objects.get()
    assert s.transient == ["timeout", "rate_limited"] and s.fatal == ["schema_change"]


def test_one_click_adds_one_error_case_per_failure_class(project, owner_client, member):
    connection = ConnectionFactory(project=project)
    ErrorStrategyFactory(
        connection=connection, transient=["timeout", "rate_limited"], fatal=["validation"]
    )
    assert findings(project, 4, "error_cases") == [
        f"No error-scenario case for timeout on {connection}.",
        f"No error-scenario case for rate limited (429) on {connection}.",
        f"No error-scenario case for validation error on {connection}.",
    ]
    step4 = reverse("planner:step", args=[project.pk, 4])
    assert "Add the error-scenario test cases" in owner_client.get(step4).content.decode()
    generate = reverse("planner:error_cases_generate", args=[project.pk])
    assert client_for(member("viewer")).post(generate).status_code == 403
    assert owner_client.get(generate).status_code == 405  # GET never writes
    assert not TestCase.objects.exists()

    response = owner_client.post(generate, follow=True)
    assert "Added 3 error-scenario test cases" in response.content.decode()
    cases = {c.failure_class: c for c in TestCase.objects.filter(project=project)}
    assert set(cases) == {"timeout", "rate_limited", "validation"}
    assert {c.stage for c in cases.values()} == {Stage.ERRORS}
    assert cases["timeout"].scenario == ErrorScenario.TARGET_DOWN
    assert cases["rate_limited"].scenario == ErrorScenario.VOLUME_SPIKE
    assert cases["validation"].scenario == ErrorScenario.INVALID_DATA
    assert "Retried 5 times, backoff from 2 s up to 300 s" in cases["timeout"].expected_result
    assert "Integrations on-call is notified within 15 min" in cases["validation"].pass_criterion
    assert "error_cases" not in failing(project, 4)
    # They count as the error scenarios step 4 asks for.
    assert "error_scenarios" not in failing(project, 4)

    owner_client.post(generate)  # nothing left to add: no duplicates
    assert TestCase.objects.count() == 3


def test_set_aside_records_need_a_dead_letter_monitor(project, owner_client):
    ErrorStrategyFactory(connection=ConnectionFactory(project=project))
    assert findings(project, 6, "dead_letter_monitor") == [
        "Failed records are set aside but nothing watches their volume."
    ]
    step6 = reverse("planner:step", args=[project.pk, 6])
    assert "Add a dead-letter volume monitor" in owner_client.get(step6).content.decode()
    owner_client.post(reverse("planner:dead_letter_monitor", args=[project.pk]))
    monitor = Monitor.objects.get(project=project)
    assert monitor.kind == Monitor.Kind.DEAD_LETTER and monitor.is_complete
    assert monitor.alert_route == "Integrations on-call"
    assert "dead_letter_monitor" not in failing(project, 6)
    owner_client.post(reverse("planner:dead_letter_monitor", args=[project.pk]))
    assert Monitor.objects.count() == 1


# Security and privacy -------------------------------------------------------------------------


def test_a_connection_with_personal_data_needs_a_retention_and_a_review(project):
    connection = ConnectionFactory(project=project)
    email = FieldMappingFactory(project=project, connection=connection, target_field="email")
    assert "personal_data_protected" not in failing(project, 2)  # nothing flagged yet
    PersonalFieldFactory(mapping=email, retention="")
    assert findings(project, 2, "personal_data_protected") == [
        f"{connection} carries personal data: it needs a data retention and a security review "
        "(date and reviewer) and a purpose and retention for email."
    ]
    review = SecurityReviewFactory(connection=connection, reviewed_on=None)
    texts = findings(project, 2, "personal_data_protected")
    assert len(texts) == 1 and "a security review (date and reviewer)" in texts[0]
    assert "a data retention" not in texts[0]
    review.reviewed_on, review.reviewer = "2026-10-01", "Security lead"
    review.save()
    PersonalField.objects.update(retention="7 years")
    assert "personal_data_protected" not in failing(project, 2)


def test_personal_fields_are_flagged_from_the_projects_mapping_only(project, owner_client):
    connection = ConnectionFactory(project=project)
    email = FieldMappingFactory(project=project, connection=connection, target_field="email")
    foreign = FieldMappingFactory()
    url = add_url("personalfield", project)
    data = {
        "add-personalfield-mapping": foreign.pk,
        "add-personalfield-purpose": "Invoices",
        "add-personalfield-retention": "7 years",
    }
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "Field: Select a valid choice" in html
    data["add-personalfield-mapping"] = email.pk
    owner_client.post(url, data, **HTMX)
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "&#x27;email&#x27; is already flagged." in html
    assert PersonalField.objects.get().mapping == email


def test_a_review_date_needs_its_reviewer(project, owner_client):
    connection = ConnectionFactory(project=project)
    data = {
        "add-securityreview-connection": connection.pk,
        "add-securityreview-authentication": "API key",
        "add-securityreview-retention": "1 year",
        "add-securityreview-reviewed_on": "2026-10-01",
        "add-securityreview-reviewer": "",
    }
    html = owner_client.post(add_url("securityreview", project), data, **HTMX).content.decode()
    assert "Reviewer: Name who did the review on that date." in html


# Backfill -------------------------------------------------------------------------------------


def test_every_connection_needs_a_verified_backfill_or_no_history(project):
    connection = ConnectionFactory(project=project)
    assert findings(project, 4, "backfill_plans") == [
        f"{connection} has no backfill plan (or 'no history to move')."
    ]
    plan = BackfillFactory(connection=connection, no_history=True, no_history_reason="")
    assert findings(project, 4, "backfill_plans") == [
        f"{connection}'s backfill lacks the reason there is no history."
    ]
    plan.no_history = False
    plan.record_count, plan.order, plan.throttle_per_minute = 48000, "oldest first", 600
    plan.window, plan.undo = "Saturday night", "Delete by batch tag"
    plan.save()
    assert findings(project, 4, "backfill_plans") == [
        f"{connection}'s backfill lacks verification run."
    ]
    run = ValidationRunFactory(project=project, connection=connection, status="failed")
    plan.verification_run = run
    plan.save()
    assert findings(project, 4, "backfill_plans") == [
        f"{connection}'s backfill verification run #{run.number} failed."
    ]
    run.status = "passed"
    run.save()
    assert "backfill_plans" not in failing(project, 4)


def test_the_verification_run_must_be_a_reconciliation_of_that_connection(project, owner_client):
    connection = ConnectionFactory(project=project)
    other = ConnectionFactory(project=project)
    wrong = ValidationRunFactory(project=project, connection=other, status="passed")
    right = ValidationRunFactory(project=project, connection=connection, status="passed")
    data = {
        "add-backfill-connection": connection.pk,
        "add-backfill-record_count": "48000",
        "add-backfill-order": "oldest first",
        "add-backfill-throttle_per_minute": "600",
        "add-backfill-window": "Saturday 22:00-06:00",
        "add-backfill-undo": "Delete by batch tag",
        "add-backfill-verification_run": wrong.pk,
    }
    url = add_url("backfill", project)
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert f"Verification run: Run #{wrong.number} checked {other}, not {connection}." in html
    assert not BackfillPlan.objects.exists()
    data["add-backfill-verification_run"] = right.pk
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert f"run #{right.number}</a> (passed)" in html
    assert BackfillPlan.objects.get().verification_run == right
    no_reason = {"add-backfill-connection": other.pk, "add-backfill-no_history": "on"}
    html = owner_client.post(url, no_reason, **HTMX).content.decode()
    assert "Say why there is no history to move." in html


# Sign-off hash, runbook, API ------------------------------------------------------------------


def test_the_practices_are_in_the_step_hashes(project):
    connection = ConnectionFactory(project=project)
    before = step_hashes(project)
    OwnershipFactory(connection=connection)
    after_owners = step_hashes(project)
    assert after_owners[1] != before[1] and after_owners[2] == before[2]
    strategy = ErrorStrategyFactory(connection=connection)
    after_strategy = step_hashes(project)
    assert after_strategy[2] != after_owners[2]
    strategy.retry_attempts = 7
    strategy.save()
    assert step_hashes(project)[2] != after_strategy[2]
    BackfillFactory(connection=connection)
    assert step_hashes(project)[4] != after_strategy[4]


def test_the_runbook_names_owners_error_handling_security_and_backfill(project):
    connection = ConnectionFactory(project=project)
    OwnershipFactory(connection=connection, incident_resolver="Integrations on-call")
    ErrorStrategyFactory(connection=connection, transient=["rate_limited"])
    SecurityReviewFactory(connection=connection, reviewer="Security lead")
    PersonalFieldFactory(
        mapping=FieldMappingFactory(project=project, connection=connection, target_field="email")
    )
    BackfillFactory(connection=connection, no_history_reason="The target starts empty.")
    html = render_html(project)
    for text in (
        "Owners of each connection",
        "Who resolves incidents",
        "Integrations on-call",
        "oncall@example.com",
        "rate limited (429)",
        "Dead-letter queue",
        "Security lead",
        "email (Invoice delivery; 7 years)",
        "No history to move: The target starts empty.",
    ):
        assert text in html, text


def test_the_api_gives_each_connections_practices(project, member):
    connection = ConnectionFactory(project=project)
    OwnershipFactory(connection=connection)
    ErrorStrategyFactory(connection=connection)
    run = ValidationRunFactory(project=project, connection=connection, status="passed")
    BackfillFactory(connection=connection, no_history=False, record_count=10, verification_run=run)
    _, token = create_token(member("viewer"), "ci")
    client = client_for(project.owner)
    url = f"/api/projects/{project.pk}/practices"
    response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    [row] = response.json()
    assert row["connection_id"] == connection.pk
    assert row["owners"]["incident_resolver"] == "Integrations on-call"
    assert row["error_handling"]["transient"] == ["timeout"]
    assert row["error_handling"]["failed_records_to"] == "dead_letter"
    assert row["security"] is None and row["personal_fields"] == []
    assert row["backfill"]["verification_run_id"] == run.pk
    assert row["backfill"]["verification_status"] == "passed"
    _, outsider = create_token(ProjectFactory().owner, "ci")
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {outsider}").status_code == 404


# Discovery, per system ------------------------------------------------------------------------


def test_every_system_is_profiled(project, owner_client):
    crm = SystemFactory(project=project, name="CRM")
    assert findings(project, 1, "systems_profiled") == ["CRM has no discovery profile."]
    profile = SystemProfileFactory(system=crm, authentication="", environments=[])
    assert findings(project, 1, "systems_profiled") == [
        "CRM has no authentication method, environments."
    ]
    profile.authentication, profile.environments = "api_key", ["sandbox"]
    profile.save()
    assert "systems_profiled" not in failing(project, 1)

    billing = SystemFactory(project=project, name="Billing")
    data = {
        "add-systemprofile-system": billing.pk,
        "add-systemprofile-api": "soap",
        "add-systemprofile-documentation": "poor",
        "add-systemprofile-authentication": "certificate",
        "add-systemprofile-environments": ["test", "production"],
        "add-systemprofile-rate_limits": "10/s",
    }
    url = add_url("systemprofile", project)
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "Test, Production" in html
    assert SystemProfile.objects.get(system=billing).environments == ["test", "production"]
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "Billing already has a profile; edit it instead." in html
    data["add-systemprofile-system"] = SystemFactory().pk  # another project's system
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "System: Select a valid choice" in html
    assert SystemProfile.objects.count() == 2


# Phased rollout -------------------------------------------------------------------------------


def test_each_rollout_phase_needs_promotion_and_rollback(project, owner_client):
    assert findings(project, 5, "phased_rollout") == [
        "No rollout phase yet (pilot group or canary first)."
    ]
    phase = RolloutPhaseFactory(
        project=project, rollback_trigger=None, promote_on_monitor=None, blast_radius=""
    )
    assert findings(project, 5, "phased_rollout") == [
        f"Phase '{phase}' needs a promotion criterion (success criterion or monitor), a "
        "rollback trigger, a blast radius."
    ]
    criterion = CriterionFactory(project=project)
    trigger = RollbackTriggerFactory(project=project)
    phase.promote_on_criterion, phase.rollback_trigger = criterion, trigger
    phase.blast_radius = "pilot invoices"
    phase.save()
    assert "phased_rollout" not in failing(project, 5)

    foreign = MonitorFactory()  # another project's monitor is not a choice
    data = {
        "add-rolloutphase-position": "2",
        "add-rolloutphase-audience": "All EMEA",
        "add-rolloutphase-canary_percent": "25",
        "add-rolloutphase-blast_radius": "EMEA",
        "add-rolloutphase-promote_on_monitor": foreign.pk,
        "add-rolloutphase-rollback_trigger": trigger.pk,
    }
    url = add_url("rolloutphase", project)
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "…or this monitor stays quiet: Select a valid choice" in html
    data["add-rolloutphase-canary_percent"] = "120"
    data["add-rolloutphase-promote_on_monitor"] = ""
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "Share %: Ensure this value is less than or equal to 100." in html
    assert RolloutPhase.objects.count() == 1
    data["add-rolloutphase-canary_percent"] = "25"
    data["add-rolloutphase-promote_on_criterion"] = criterion.pk
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "All EMEA (25 %)" in html
    assert RolloutPhase.objects.count() == 2


def test_discovery_and_rollout_in_the_runbook_and_the_api(project, member):
    crm = SystemFactory(project=project, name="CRM")
    SystemProfileFactory(system=crm)
    RolloutPhaseFactory(project=project, audience="Finance pilot", canary_percent=5)
    html = render_html(project)
    assert "Discovery, per system" in html and "OAuth client credentials" in html
    assert "Finance pilot (5 %)" in html and "billing-sync" in html
    _, token = create_token(member("viewer"), "ci")
    client = client_for(project.owner)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    [profile] = client.get(f"/api/projects/{project.pk}/discovery", **auth).json()
    assert profile["system"] == "CRM" and profile["authentication"] == "oauth_client"
    assert profile["environments"] == ["sandbox", "production"]
    [phase] = client.get(f"/api/projects/{project.pk}/rollout", **auth).json()
    assert phase["audience"] == "Finance pilot" and phase["canary_percent"] == 5
    assert phase["rollback_trigger_id"] is not None
