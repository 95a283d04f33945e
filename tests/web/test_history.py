from django.urls import reverse

from tests.conftest import HTMX
from tests.factories import CriterionFactory


def test_history_lists_who_changed_what(project, owner_client):
    criterion = CriterionFactory(project=project)
    prefix = f"criterion-{criterion.pk}-"
    owner_client.post(
        reverse("planner:criterion_edit", args=[project.pk, criterion.pk]),
        {
            prefix + "metric": "sync latency",
            prefix + "metric_key": "external",
            prefix + "comparator": "<=",
            prefix + "target": "2",
            prefix + "unit": "minutes",
            prefix + "window_value": "30",
            prefix + "window_unit": "days",
            prefix + "expected_version": "1",
        },
        **HTMX,
    )
    html = owner_client.get(reverse("planner:history", args=[project.pk])).content.decode()
    assert project.owner.username in html
    assert "Success criterion: sync latency" in html
    assert "changed: target, attainment %" in html


def test_field_by_field_diff_between_any_two_versions(project, owner_client):
    criterion = CriterionFactory(project=project, metric="v1", unit="minutes")
    for metric in ("v2", "v3"):
        criterion.metric = metric
        criterion.save()
    versions = list(criterion.history.order_by("history_date"))
    url = reverse("planner:history_object", args=[project.pk, "criterion", criterion.pk])
    html = owner_client.get(
        url, {"a": versions[0].history_id, "b": versions[2].history_id}
    ).content.decode()
    row = html[html.index("<td>Metric</td>") :][:80]
    assert "<td>v1</td><td>v3</td>" in row
    assert '<tr class="changed"><td>Metric</td>' in html
    assert "<tr><td>Unit</td><td>minutes</td><td>minutes</td>" in html
    # default: the latest against the one before
    html = owner_client.get(url).content.decode()
    assert "<td>v2</td><td>v3</td>" in html


def test_history_of_unknown_things_is_not_found(project, owner_client):
    url = reverse("planner:history_object", args=[project.pk, "criterion", 999999])
    assert owner_client.get(url).status_code == 404
    url = reverse("planner:history_object", args=[project.pk, "nonsense", 1])
    assert owner_client.get(url).status_code == 404
    assert (
        owner_client.get(reverse("planner:history", args=[project.pk]), {"before": "x"}).status_code
        == 400
    )


def test_history_of_another_projects_record_is_hidden(project, owner_client):
    other = CriterionFactory()
    url = reverse("planner:history_object", args=[project.pk, "criterion", other.pk])
    assert owner_client.get(url).status_code == 404
