"""One series, every reader: the criterion page, the API, a health review, go-live, its parallel-run
gate and the burn alerts state the same compliance, before and after roll-ups; and reading any of
them writes nothing."""

import re
from datetime import timedelta
from html import escape

from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from planner.api.tokens import create_token
from planner.checklist import golive
from planner.metrics import slo
from planner.models import ApiToken, HealthReview, SliPoint, TestPlan
from planner.reviews.service import compare_criteria
from planner.runs import slo_alerts
from tests.conftest import client_for
from tests.factories import MembershipFactory
from tests.service_levels import fresh

TEN = timedelta(minutes=10)


def _hand_series(c):
    """Points every 10 minutes over the last 30 days, 100 events each, kept clear of the window's
    old edge (so the hour turning during the test changes nothing): 20 points wholly bad 20 days
    ago, and a last point half bad a minute ago. Returns (good, total) worked out by hand."""
    now = timezone.now()
    base = now.replace(minute=0, second=0, microsecond=0)
    first = base - timedelta(days=30) + timedelta(hours=2, minutes=5)
    count = int((now - TEN - first) / TEN) + 1
    bad_from = now - timedelta(days=20)
    points = [SliPoint(criterion=c, at=first + i * TEN, good=100, total=100) for i in range(count)]
    for p in [p for p in points if p.at > bad_from][:20]:
        p.good = 0
    points.append(SliPoint(criterion=c, at=now - timedelta(minutes=1), good=50, total=100))
    SliPoint.objects.bulk_create(points)
    total = 100 * (count + 1)
    return total - 2000 - 50, total


def _page_compliance(client, c) -> str:
    html = client.get(reverse("planner:criterion_service_level", args=[c.project_id, c.pk]))
    block = re.search(
        rf'data-testid="slo-figures-{c.pk}">(.*?)</dl>', html.content.decode(), re.S
    ).group(1)
    return re.search(r"<strong>([\d.]+)%</strong>", block).group(1)


def test_every_reader_states_the_same_compliance_before_and_after_roll_ups(db):
    c = fresh()
    TestPlan.objects.update_or_create(
        project=c.project, defaults={"gate_criterion": c, "gate_days": 30}
    )
    good, total = _hand_series(c)
    expected = round(100 * good / total, 4)
    client = client_for(c.project.owner)
    _, token = create_token(c.project.owner, "ci")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def readers() -> dict:
        api = Client().get(f"/api/projects/{c.project_id}/criteria/{c.pk}", **auth).json()
        [listed] = Client().get(f"/api/projects/{c.project_id}/criteria", **auth).json()
        review = HealthReview.objects.create(
            project=c.project, trigger="manual", status="healthy", kpis={}
        )
        [judged] = compare_criteria(review)
        reasons = {r.kind: r.text for r in golive.verdict(c.project).reasons}
        alert = slo_alerts.evaluate_burn(c)["compliance"]
        return {
            "slo": slo.compliance(c).attainment_pct,
            "page": float(_page_compliance(client, c)),
            "api": api["compliance_pct"],
            "api list": listed["compliance_pct"],
            "review": judged.measured,
            "go-live": float(re.search(r"measured ([\d.]+) %", reasons["criterion"]).group(1)),
            "gate": float(re.search(r"compliance ([\d.]+)%", reasons["parallel_run"]).group(1)),
            "alerts": alert.attainment_pct,
            "api good/total": (api["good"], api["total"]),
        }

    before = readers()
    assert before == {**dict.fromkeys(before, expected), "api good/total": (good, total)}
    assert slo.roll_up() > 0 and slo.roll_up() == 0  # the second finds nothing to fold
    assert SliPoint.objects.filter(criterion=c, resolution="hour").exists()
    assert readers() == before


def test_the_burn_alert_states_the_burn_rates_the_api_and_the_page_show(db):
    c = fresh()
    _hand_series(c)
    owner = c.project.owner
    _, token = create_token(owner, "ci")
    api = (
        Client()
        .get(f"/api/projects/{c.project_id}/criteria/{c.pk}", HTTP_AUTHORIZATION=f"Bearer {token}")
        .json()
    )
    rules = {r["rule"]: r for r in api["burn_rates"]}
    # The last minute: 50 bad of 100 against 0.1 % allowed, a burn of 500 over 5 minutes.
    assert rules["fast"]["short_burn_rate"] == 500.0 and rules["fast"]["firing"]
    [alert] = slo_alerts.evaluate_burn(c)["opened"]
    long_burn = rules["fast"]["long_burn_rate"]
    assert alert.value == long_burn and f"{long_burn:g}x over 1 h and 500x over 5 min" in (
        alert.title
    )
    html = client_for(owner).get(
        reverse("planner:criterion_service_level", args=[c.project_id, c.pk])
    )
    assert escape(alert.title) in html.content.decode()


# ---------------------------------------------------------------------------------------------
# Reading never writes


def _snapshot() -> dict:
    """Every table's rows, and each row's last change where the model keeps one (an API token's
    last use is recorded on purpose)."""
    out = {}
    for model in apps.get_models():
        if model is ApiToken or model._meta.proxy:
            continue
        rows = model._default_manager.order_by()
        out[model._meta.label] = rows.count()
        for name in ("updated_at", "last_seen_at", "resolved_at", "modified"):
            if any(f.name == name for f in model._meta.concrete_fields):
                out[f"{model._meta.label}.{name}"] = sorted(
                    str(v) for v in rows.values_list(name, flat=True)
                )
    out["points"] = sorted(
        SliPoint.objects.values_list("pk", "resolution", "at", "good", "total", "points")
    )
    return out


def test_no_get_about_service_levels_writes_anything(db):
    c = fresh()
    _hand_series(c)  # a burn going on now, raw points old enough to roll up
    slo_alerts.evaluate_burn(c)  # an alert already open
    viewer = MembershipFactory(project=c.project, role="viewer").user
    client = client_for(viewer)
    _, token = create_token(viewer, "ci")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    pages = [
        reverse("planner:criterion_service_level", args=[c.project_id, c.pk]),
        reverse("planner:criterion_freshness", args=[c.project_id, c.pk]),
        reverse("planner:step", args=[c.project_id, 1]),
        reverse("planner:step", args=[c.project_id, 4]),
        reverse("planner:step", args=[c.project_id, 6]),
    ]
    apis = [
        f"/api/projects/{c.project_id}/criteria",
        f"/api/projects/{c.project_id}/criteria/{c.pk}",
        f"/api/projects/{c.project_id}/criteria/{c.pk}/freshness",
        f"/api/projects/{c.project_id}/freshness-settings",
    ]
    client.get(pages[0])  # the session's first request may store the session itself
    before = _snapshot()
    for url in pages:
        assert client.get(url).status_code == 200, url
    for url in apis:
        assert Client().get(url, **auth).status_code == 200, url
    assert _snapshot() == before
