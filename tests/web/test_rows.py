"""Inline editing of table rows: htmx fragments, plain-form fallbacks, conflicts."""

from django.urls import reverse

from planner.models import Connection, Role, SuccessCriterion, System
from tests.conftest import HTMX, client_for
from tests.factories import CriterionFactory, SystemFactory


def add_url(kind, project):
    return reverse(f"planner:{kind}_add", kwargs={"project_id": project.pk})


def row_url(kind, action, obj):
    return reverse(f"planner:{kind}_{action}", kwargs={"project_id": obj.project_id, "pk": obj.pk})


CRITERION = {
    "add-criterion-metric": "sync latency",
    "add-criterion-metric_key": "external",
    "add-criterion-comparator": "<=",
    "add-criterion-target": "5",
    "add-criterion-unit": "minutes",
    "add-criterion-attainment_pct": "99.9",
    "add-criterion-window_value": "30",
    "add-criterion-window_unit": "days",
}


def test_htmx_add_returns_the_table_with_the_row_and_a_fresh_navigator(project, owner_client):
    response = owner_client.post(add_url("criterion", project), CRITERION, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="criterion-table"' in html
    assert "sync latency" in html and "99.9% over 30 days" in html
    assert 'id="navigator"' in html and 'hx-swap-oob="true"' in html
    assert "<html" not in html  # a fragment, not a page
    criterion = SuccessCriterion.objects.get(project=project)
    assert criterion.is_measurable and criterion.version == 1


def test_plain_form_add_redirects_back_to_the_step(project, owner_client):
    response = owner_client.post(add_url("criterion", project), CRITERION)
    assert response.status_code == 302
    assert response["Location"] == reverse("planner:step", args=[project.pk, 1])
    assert SuccessCriterion.objects.filter(project=project).count() == 1


def test_bad_input_names_the_field_and_keeps_what_was_typed(project, owner_client):
    data = {**CRITERION, "add-criterion-attainment_pct": "150", "add-criterion-target": "abc"}
    response = owner_client.post(add_url("criterion", project), data, **HTMX)
    html = response.content.decode()
    assert "Attainment %: Attainment is a percentage above 0 and at most 100." in html
    assert "Target: Enter a number." in html
    assert 'value="sync latency"' in html  # input kept
    assert not SuccessCriterion.objects.exists()


def test_plain_form_bad_input_renders_an_edit_page(project, owner_client):
    data = {**CRITERION, "add-criterion-metric": ""}
    response = owner_client.post(add_url("criterion", project), data)
    assert response.status_code == 200
    assert "Metric: This field is required." in response.content.decode()


def test_edit_get_returns_the_row_form_and_save_returns_the_row(project, owner_client):
    criterion = CriterionFactory(project=project)
    form = owner_client.get(row_url("criterion", "edit", criterion), **HTMX).content.decode()
    assert 'class="grid-row editing"' in form and f'name="criterion-{criterion.pk}-metric"' in form
    prefix = f"criterion-{criterion.pk}-"
    data = {prefix + k.removeprefix("add-criterion-"): v for k, v in CRITERION.items()}
    data[prefix + "metric"] = "records in sync"
    data[prefix + "expected_version"] = "1"
    response = owner_client.post(row_url("criterion", "edit", criterion), data, **HTMX)
    html = response.content.decode()
    assert "records in sync" in html and "editing" not in html
    criterion.refresh_from_db()
    assert (criterion.metric, criterion.version) == ("records in sync", 2)


def test_second_save_from_a_stale_form_is_refused_and_input_kept(project, member):
    from tests.conftest import client_for

    alice, bob = client_for(project.owner), client_for(member("editor"))
    criterion = CriterionFactory(project=project)
    prefix = f"criterion-{criterion.pk}-"
    base = {prefix + k.removeprefix("add-criterion-"): v for k, v in CRITERION.items()}
    base[prefix + "expected_version"] = "1"
    url = row_url("criterion", "edit", criterion)

    alice.post(url, {**base, prefix + "metric": "alice metric"}, **HTMX)
    response = bob.post(url, {**base, prefix + "metric": "bob metric"}, **HTMX)
    html = response.content.decode()
    assert "saved this success criterion while you were editing" in html
    assert project.owner.username in html
    assert 'value="bob metric"' in html  # Bob's input is kept
    assert "alice metric" in html  # and he sees what is stored now
    criterion.refresh_from_db()
    assert criterion.metric == "alice metric"

    # Saving again, now knowingly on top of version 2, keeps Bob's value.
    again = {**base, prefix + "metric": "bob metric", prefix + "expected_version": "2"}
    bob.post(url, again, **HTMX)
    criterion.refresh_from_db()
    assert (criterion.metric, criterion.version) == ("bob metric", 3)


def test_delete_with_htmx_removes_the_row(project, owner_client):
    criterion = CriterionFactory(project=project)
    response = owner_client.post(row_url("criterion", "delete", criterion), **HTMX)
    assert response.status_code == 200
    assert 'id="navigator"' in response.content.decode()
    assert not SuccessCriterion.objects.filter(pk=criterion.pk).exists()


def test_delete_without_javascript_asks_on_a_page_and_deletes_only_on_post(
    project, owner_client, member
):
    criterion = CriterionFactory(project=project, metric="sync latency")
    url = row_url("criterion", "delete", criterion)
    # The row offers a plain link to the confirmation page (htmx asks with hx-confirm).
    step = owner_client.get(reverse("planner:step", args=[project.pk, 1])).content.decode()
    assert f'href="{url}"' in step
    page = owner_client.get(url)
    html = page.content.decode()
    assert page.status_code == 200 and "sync latency" in html
    assert f'<form method="post" action="{url}">' in html and ">Cancel</a>" in html
    assert SuccessCriterion.objects.filter(pk=criterion.pk).exists()  # GET deletes nothing
    # A viewer may neither see the confirmation nor delete.
    viewer = client_for(member(Role.VIEWER))
    assert viewer.get(url).status_code == 403 and viewer.post(url).status_code == 403
    assert owner_client.post(url).status_code == 302
    assert not SuccessCriterion.objects.filter(pk=criterion.pk).exists()


def test_connections_only_offer_and_accept_the_projects_systems(project, owner_client):
    crm = SystemFactory(project=project, name="CRM")
    billing = SystemFactory(project=project, name="Billing")
    foreign = SystemFactory(name="Someone else's ERP")
    page = owner_client.get(reverse("planner:inventory", args=[project.pk])).content.decode()
    assert "Someone else&#x27;s ERP" not in page
    data = {
        "add-connection-source": crm.pk,
        "add-connection-target": foreign.pk,
        "add-connection-direction": "one_way",
        "add-connection-trigger": "event",
        "add-connection-frequency": "real_time",
    }
    html = owner_client.post(add_url("connection", project), data, **HTMX).content.decode()
    assert "Target: Select a valid choice" in html
    data["add-connection-target"] = crm.pk
    html = owner_client.post(add_url("connection", project), data, **HTMX).content.decode()
    assert "A connection needs two different systems." in html
    data["add-connection-target"] = billing.pk
    data["add-connection-volume_per_day"] = "100"
    data["add-connection-peak_per_day"] = "50"
    html = owner_client.post(add_url("connection", project), data, **HTMX).content.decode()
    assert "The peak day cannot be below the typical day." in html
    data["add-connection-peak_per_day"] = "500"
    owner_client.post(add_url("connection", project), data, **HTMX)
    assert Connection.objects.filter(project=project, source=crm, target=billing).exists()


def test_duplicate_system_names_are_refused_case_insensitively(project, owner_client):
    SystemFactory(project=project, name="Billing")
    data = {"add-system-name": "billing", "add-system-kind": "billing"}
    html = owner_client.post(add_url("system", project), data, **HTMX).content.decode()
    assert "already has a system called" in html
    assert System.objects.filter(project=project).count() == 1


def test_deleting_a_system_asks_the_page_to_refresh(project, owner_client):
    system = SystemFactory(project=project)
    response = owner_client.post(row_url("system", "delete", system), **HTMX)
    assert response["HX-Refresh"] == "true"
    assert not System.objects.filter(pk=system.pk).exists()


def test_row_urls_built_once_match_reverse(project):
    from planner.steps.objectives import CRITERIA
    from planner.web.rows import row_urls

    criterion = CriterionFactory(project=project)
    urls = row_urls(CRITERIA, project)(criterion.pk)
    assert urls == {
        "show_url": row_url("criterion", "show", criterion),
        "edit_url": row_url("criterion", "edit", criterion),
        "delete_url": row_url("criterion", "delete", criterion),
        "service_level_url": reverse(
            "planner:criterion_service_level", args=[project.pk, criterion.pk]
        ),
    }


def test_an_edit_refreshes_the_step_rules_out_of_band(project, owner_client):
    html = owner_client.post(add_url("criterion", project), CRITERION, **HTMX).content.decode()
    assert 'id="step-header" hx-swap-oob="true"' in html
    assert 'class="pass">At least one success criterion' in html
    assert 'aria-current="page"' in html  # the navigator still marks step 1


def test_inventory_counts_refresh_out_of_band(project, owner_client):
    SystemFactory(project=project, name="CRM")
    data = {"add-system-name": "Billing", "add-system-kind": "billing"}
    html = owner_client.post(add_url("system", project), data, **HTMX).content.decode()
    assert 'id="inventory-summary" hx-swap-oob="true"' in html
    assert "2 systems need 1 point-to-point connection or 2 through a hub" in html


def test_system_rows_link_to_their_connection_settings(project, owner_client):
    system = SystemFactory(project=project)
    html = owner_client.get(reverse("planner:inventory", args=[project.pk])).content.decode()
    settings_url = reverse("planner:system_settings", args=[project.pk, system.pk])
    assert f'href="{settings_url}"' in html
