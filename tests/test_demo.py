from django.core.management import call_command

from planner.checklist.readiness import project_readiness
from planner.models import Connection, IntegrationProject, PersonalField, System


def test_demo_loads_the_seed_scenarios_idempotently(db):
    call_command("load_demo")
    call_command("load_demo")
    names = set(IntegrationProject.objects.values_list("name", flat=True))
    assert names == {
        "CRM to billing: customer status",
        "Support platform to billing: payment status",
        "Five-system revenue stack",
    }
    stack = IntegrationProject.objects.get(name="Five-system revenue stack")
    assert System.objects.filter(project=stack).count() == 5
    assert Connection.objects.filter(project=stack).count() == 6
    crm = IntegrationProject.objects.get(name="CRM to billing: customer status")
    # Step 1's rules hold; it awaits the demo approver's sign-off.
    assert project_readiness(crm).for_step(1).state == "awaiting_sign_off"
    # The guides' practices are filled on its connection; the backfill awaits its
    # verification run and step 4 offers the error cases of the strategy in one click.
    crm_billing = Connection.objects.get(project=crm)
    assert crm_billing.ownership.incident_resolver == "Integrations on-call"
    assert crm_billing.error_strategy.fatal == ["validation", "schema_change"]
    assert crm_billing.security_review.reviewer == "Security lead"
    flagged = PersonalField.objects.filter(mapping__connection=crm_billing)
    assert {p.mapping.target_field for p in flagged} == {"email", "full_name"}
    r = project_readiness(crm)
    assert "error_strategies" not in {o.rule.code for o in r.for_step(2).outcomes if not o.passed}
    backfill = [f.text for o in r.for_step(4).outcomes for f in o.findings if "backfill" in f.text]
    assert backfill == [f"{crm_billing}'s backfill lacks verification run."]
    support = IntegrationProject.objects.get(name__startswith="Support platform")
    assert "payment status latency ≤ 2 minutes" in str(support.criteria.get()).replace("<=", "≤")


def test_the_demo_validation_run_finds_the_planted_problems(db):
    from aethon.celery import app
    from planner.models import RunStage
    from planner.runs.service import start_validation_run

    call_command("load_demo")
    crm = IntegrationProject.objects.get(name="CRM to billing: customer status")
    connection = Connection.objects.get(project=crm)
    app.conf.task_always_eager = True
    try:
        run = start_validation_run(connection, None)
    finally:
        app.conf.task_always_eager = False
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error == (
        "Mapping validation: 3 violation(s); Reconciliation: 2 missing in target; "
        "2 extra in target; 3 with differing fields"
    )
    stages = {s.name: s.status for s in RunStage.objects.filter(run=run)}
    assert stages["connectivity"] == "passed" and stages["schema"] == "passed"


def test_the_demo_shows_the_guides_practices_on_its_pages(db):
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    from tests.conftest import client_for
    from tests.factories import PASSWORD

    call_command("load_demo")
    demo = get_user_model().objects.get(username="demo")
    demo.set_password(PASSWORD)
    demo.save()
    client = client_for(demo)
    crm = IntegrationProject.objects.get(name="CRM to billing: customer status")

    def page(number: int) -> str:
        response = client.get(reverse("planner:step", args=[crm.pk, number]))
        assert response.status_code == 200
        return response.content.decode()

    assert "OAuth client credentials" in page(1) and "Integrations on-call" in page(1)
    step2 = page(2)
    assert "Dead-letter queue" in step2 and "Invoice delivery" in step2
    step4 = page(4)
    assert "5 failure classes" in step4 and "Add the error-scenario test cases" in step4
    assert "Saturday 22:00-06:00" in step4
    assert "Finance pilot: 50 customers" in page(5)
    assert "Add a dead-letter volume monitor" in page(6)
    governance = client.get(reverse("planner:governance")).content.decode()
    assert "7 years after the customer leaves" in governance and "Security lead" in governance
    step7 = page(7)
    assert "Push status changes in batches of 200 at quarter end" in step7
    assert "Mismatch rate (%)" in step7  # the KPI the second improvement should move
    assert "Moved the nightly reconciliation to 02:00" in step7
    # The go-live is planned, so step 7 and the governance inventory name the annual
    # architecture review.
    assert "Annual architecture review" in step7
    assert "#crm-billing-sync" in step7


def test_the_demo_user_is_staff_so_the_people_page_shows(db):
    from django.contrib.auth import get_user_model

    call_command("load_demo")
    staff = set(get_user_model().objects.filter(is_staff=True).values_list("username", flat=True))
    assert staff == {"demo"}
