"""The governance inventory across projects (page and CSV) and the annual architecture review."""

import csv
import io
from datetime import date

from django.urls import reverse

from planner.checklist.governance import inventory, next_architecture_review
from planner.models import GoLive
from planner.runbook.service import render_html
from tests.conftest import client_for
from tests.factories import (
    ConnectionFactory,
    CriterionFactory,
    FieldMappingFactory,
    MembershipFactory,
    OwnershipFactory,
    PersonalFieldFactory,
    ProjectFactory,
    SecurityReviewFactory,
    TrainingPlanFactory,
)


def test_the_architecture_review_comes_once_a_year_after_go_live():
    assert next_architecture_review(None, date(2026, 11, 29)) is None
    assert next_architecture_review(date(2026, 3, 1), date(2026, 11, 29)) == date(2027, 3, 1)
    assert next_architecture_review(date(2024, 12, 1), date(2026, 11, 29)) == date(2026, 12, 1)
    assert next_architecture_review(date(2024, 2, 29), date(2026, 11, 29)) == date(2027, 2, 28)


def test_the_inventory_flags_overdue_and_missing_reviews(project):
    today = date(2026, 11, 29)
    fresh = ConnectionFactory(project=project)
    stale = ConnectionFactory(project=project)
    never = ConnectionFactory(project=project)
    OwnershipFactory(connection=fresh, data_owner="Sales Ops")
    SecurityReviewFactory(connection=fresh, reviewed_on=date(2026, 6, 1), retention="7 years")
    SecurityReviewFactory(connection=stale, reviewed_on=date(2025, 6, 1))
    PersonalFieldFactory(
        mapping=FieldMappingFactory(project=project, connection=fresh, target_field="email")
    )
    CriterionFactory(project=project, metric="sync latency")
    TrainingPlanFactory(project=project, go_live_on=date(2026, 3, 1))
    rows = {r.connection.pk: r for r in inventory([project], today)}
    assert rows[fresh.pk].review_status == "ok" and rows[fresh.pk].next_review_due == date(
        2027, 6, 1
    )
    assert rows[fresh.pk].data_owner == "Sales Ops" and rows[fresh.pk].personal_data == "email"
    assert rows[fresh.pk].retention == "7 years" and "sync latency" in rows[fresh.pk].slas
    assert rows[stale.pk].review_status == "overdue" and rows[stale.pk].flagged
    assert (
        rows[never.pk].review_status == "never reviewed" and rows[never.pk].next_review_due is None
    )
    assert rows[fresh.pk].next_architecture_review == date(2027, 3, 1)
    # Marked live: the go-live counts, not the plan.
    GoLive.objects.create(project=project, user=project.owner)
    live = inventory([project], today)[0]
    assert live.live and live.next_architecture_review.year == today.year + 1


def test_the_page_and_csv_show_only_the_users_projects(project, owner_client):
    mine = ConnectionFactory(project=project)
    review = SecurityReviewFactory(connection=mine, reviewed_on=date(2020, 1, 1), reviewer="=cmd()")
    theirs = ConnectionFactory(project=ProjectFactory(name="Not yours"))
    html = owner_client.get(reverse("planner:governance")).content.decode()
    assert str(mine) in html
    assert "Not yours" not in html and str(theirs.project) not in html
    assert "1 review overdue or missing" in html
    response = owner_client.get(reverse("planner:governance_csv"))
    assert response["Content-Disposition"] == 'attachment; filename="governance-inventory.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["project"] for r in rows] == [project.name]
    assert rows[0]["review status"] == "overdue"
    assert rows[0]["reviewer"] == "'=cmd()"  # never a live formula in a spreadsheet
    for start in ("\t=cmd()", "\r=cmd()", "'=cmd()", "@SUM(A1)"):
        review.reviewer = start
        review.save()
        cells = [
            r["reviewer"]
            for r in csv.DictReader(
                io.StringIO(owner_client.get(reverse("planner:governance_csv")).content.decode())
            )
        ]
        assert cells == ["'" + start], cells
    viewer = MembershipFactory(project=project, role="viewer").user
    assert (
        len(
            list(
                csv.DictReader(
                    io.StringIO(
                        client_for(viewer).get(reverse("planner:governance_csv")).content.decode()
                    )
                )
            )
        )
        == 1
    )


def test_step_7_the_runbook_and_the_api_give_the_next_architecture_review(project):
    TrainingPlanFactory(project=project, go_live_on=date(2026, 3, 1))
    client = client_for(project.owner)
    html = client.get(reverse("planner:step", args=[project.pk, 7])).content.decode()
    expected = next_architecture_review(date(2026, 3, 1), date.today())
    assert f"next on {expected:%-d %b %Y}" in html
    assert f"Once a year, next on {expected:%-d %b %Y}" in render_html(project)
    from planner.api.tokens import create_token

    ConnectionFactory(project=project)
    _, token = create_token(project.owner, "ci")
    [row] = client.get(
        f"/api/projects/{project.pk}/governance", HTTP_AUTHORIZATION=f"Bearer {token}"
    ).json()
    assert row["review_status"] == "never reviewed"
    assert row["next_architecture_review"] == expected.isoformat()
