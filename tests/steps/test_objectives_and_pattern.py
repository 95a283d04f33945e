"""Step pages and their single-record forms (objective, pattern decision)."""

from django.urls import reverse

from planner.models import Objective, PatternDecision
from tests.conftest import HTMX, client_for
from tests.factories import ObjectiveFactory, SystemFactory


def test_step_pages_show_titles_and_unavailable_steps(project, owner_client):
    for number in range(1, 8):
        response = owner_client.get(reverse("planner:step", args=[project.pk, number]))
        assert response.status_code == 200
        # Every step is built now: none shows the "not yet available" placeholder.
        assert 'data-testid="not-available"' not in response.content.decode(), number
    html = owner_client.get(reverse("planner:step", args=[project.pk, 2])).content.decode()
    assert "Data mapping" in html
    assert owner_client.get(reverse("planner:step", args=[project.pk, 8])).status_code == 404


def test_objective_saves_with_htmx_and_updates_the_navigator(project, owner_client):
    url = reverse("planner:objective_save", args=[project.pk])
    response = owner_client.post(
        url, {"business_objective": "No inactive customer invoiced", "expected_version": ""}, **HTMX
    )
    html = response.content.decode()
    assert "Saved." in html and 'id="navigator"' in html and "In progress" in html
    assert Objective.objects.get(project=project).business_objective.startswith("No inactive")


def test_stale_objective_is_refused_with_input_kept(project, member):
    objective = ObjectiveFactory(project=project)
    url = reverse("planner:objective_save", args=[project.pk])
    client_for(project.owner).post(
        url, {"business_objective": "first", "expected_version": objective.version}
    )
    late = client_for(member("editor")).post(
        url, {"business_objective": "second", "expected_version": objective.version}, **HTMX
    )
    html = late.content.decode()
    assert "Someone else saved this while you were editing" in html
    assert "second" in html and "first" in html
    objective.refresh_from_db()
    assert objective.business_objective == "first"


def test_step3_shows_counts_recommendation_and_saves_decision(project, owner_client):
    SystemFactory.create_batch(5, project=project)
    page = owner_client.get(reverse("planner:step", args=[project.pk, 3])).content.decode()
    assert 'data-testid="p2p-count">10<' in page and 'data-testid="hub-count">5<' in page
    assert "Recommendation: Hub-and-spoke" in page
    url = reverse("planner:decision_save", args=[project.pk])
    response = owner_client.post(
        url, {"pattern": "hub_and_spoke", "rationale": "Five systems", "tools": "MuleSoft"}
    )
    assert response.status_code == 302
    decision = PatternDecision.objects.get(project=project)
    assert (decision.pattern, decision.tools) == ("hub_and_spoke", "MuleSoft")
    page = owner_client.get(reverse("planner:step", args=[project.pk, 3])).content.decode()
    assert "Awaiting sign-off" in page  # complete once an approver signs it off


def test_invalid_pattern_is_refused_with_a_named_field(project, owner_client):
    url = reverse("planner:decision_save", args=[project.pk])
    html = owner_client.post(url, {"pattern": "mesh", "rationale": "x"}, **HTMX).content.decode()
    assert "Pattern: Select a valid choice" in html
    assert not PatternDecision.objects.exists()


def test_step_page_queries_do_not_grow_with_rows(
    project, owner_client, django_assert_max_num_queries
):
    from tests.factories import CriterionFactory, DataElementFactory

    url = reverse("planner:step", args=[project.pk, 1])
    owner_client.get(url)
    # session and user (2), readiness (23: the one-per-project records of all steps in one
    # query), the step's current version for the sign-off panel (5, one per artifact model),
    # the add forms' choices (systems and connections, 4), team work (assignments, open
    # comments, the bell: 3), and the connections a propagation-lag criterion names (1)
    with django_assert_max_num_queries(38) as small:
        owner_client.get(url)
    for _ in range(30):
        CriterionFactory(project=project)
        DataElementFactory(project=project)
    with django_assert_max_num_queries(len(small.captured_queries)):
        owner_client.get(url)
