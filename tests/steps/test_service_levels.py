"""A criterion's service-level page: figures, rules and plots, for members only, in a constant
number of queries whatever the number of points."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from planner.metrics import slo
from planner.models import SliPoint
from tests.conftest import client_for
from tests.factories import CriterionFactory, ProjectFactory, UserFactory
from tests.service_levels import fresh, series


def url(c):
    return reverse("planner:criterion_service_level", args=[c.project_id, c.pk])


def test_the_page_shows_compliance_budget_rules_and_accessible_plots(db):
    c = fresh()
    now = timezone.now().replace(second=0, microsecond=0)
    series(c, now - timedelta(days=30) + timedelta(hours=1), 30 * 24, step=timedelta(hours=1),
           good=999, total=1000, lag_p50=30.0, lag_p95=200.0, lag_p99=290.0, late_now=3)  # fmt: skip
    html = client_for(c.project.owner).get(url(c)).content.decode()
    assert "99.9%" in html and "Met" in html
    assert 'data-testid="burn-rules"' in html and "both &gt; 14.4" in html
    for kind in ("compliance", "budget", "lag", "late"):
        assert f'data-testid="plot-criterion-{c.pk}-{kind}"' in html
    assert f'<title id="criterion-{c.pk}-compliance-title">' in html and "<desc id=" in html
    assert "lag (minutes)" in html and "compliance %" in html  # axis labels
    assert "the figures as a table" in html and 'scope="row"' in html
    assert " style=" not in html and "<script>" not in html


def test_nothing_measured_says_so_and_never_met(db):
    c = fresh()
    html = client_for(c.project.owner).get(url(c)).content.decode()
    assert "Not enough data yet" in html and 'data-testid="slo-no-points"' in html
    assert ">Met<" not in html


def test_outsiders_get_404_and_another_projects_criterion_is_not_found(db):
    c = fresh()
    assert client_for(UserFactory()).get(url(c)).status_code == 404
    other = ProjectFactory()
    wrong = reverse("planner:criterion_service_level", args=[other.pk, c.pk])
    assert client_for(other.owner).get(wrong).status_code == 404


def test_query_count_is_the_same_for_a_day_and_a_month_of_points(db, django_assert_num_queries):
    small, big = fresh(), None
    project = small.project
    big = CriterionFactory(project=project, metric="big", metric_key="freshness_lag")
    now = timezone.now().replace(second=0, microsecond=0)
    series(small, now - timedelta(days=1), 1440, lag_p95=10.0)
    series(big, now - timedelta(days=30), 30 * 1440, lag_p95=10.0)
    slo.roll_up(now=now)
    assert SliPoint.objects.filter(criterion=big, resolution="hour").exists()
    client = client_for(project.owner)
    client.get(url(small))  # warm the session and the caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as first:
        assert client.get(url(small)).status_code == 200
    with django_assert_num_queries(len(first)):
        assert client.get(url(big)).status_code == 200
