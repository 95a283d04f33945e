from django.core.management import call_command

from planner.models import Connection, IntegrationProject, System
from planner.readiness import project_readiness


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
    support = IntegrationProject.objects.get(name__startswith="Support platform")
    assert "payment status latency ≤ 2 minutes" in str(support.criteria.get()).replace("<=", "≤")
