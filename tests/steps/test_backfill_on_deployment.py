"""Step 5 shows where each connection's backfill stands (planned in step 4) and links to it
and to the reconciliation run that verified it, with that run's outcome."""

import pytest
from django.urls import reverse

from tests.conftest import client_for
from tests.factories import (
    BackfillFactory,
    ConnectionFactory,
    ProjectFactory,
    ValidationRunFactory,
)


@pytest.fixture
def project(db):
    return ProjectFactory()


def step5(project) -> str:
    response = client_for(project.owner).get(reverse("planner:step", args=[project.pk, 5]))
    assert response.status_code == 200
    return response.content.decode()


def test_step5_names_each_connections_backfill_state(project):
    planned = ConnectionFactory(project=project)
    verified = ConnectionFactory(project=project)
    failed = ConnectionFactory(project=project)
    empty = ConnectionFactory(project=project)
    missing = ConnectionFactory(project=project)
    BackfillFactory(
        connection=planned, no_history=False, no_history_reason="", window="Saturday night"
    )
    good = ValidationRunFactory(project=project, connection=verified, status="passed")
    BackfillFactory(connection=verified, no_history=False, verification_run=good)
    bad = ValidationRunFactory(project=project, connection=failed, status="failed")
    BackfillFactory(connection=failed, no_history=False, verification_run=bad)
    BackfillFactory(connection=empty, no_history_reason="A new ledger, nothing before it.")

    html = step5(project)
    assert f"{planned}: planned for Saturday night, not verified yet" in html
    run_url = reverse("planner:run_show", args=[project.pk, good.pk])
    assert f'<a href="{run_url}">run #{good.pk}</a> (passed)' in html
    assert f"run #{bad.pk}</a> (failed)" in html
    assert "no history to move (A new ledger, nothing before it.)" in html
    assert f"{missing}: no backfill plan yet" in html
    assert reverse("planner:step", args=[project.pk, 4]) + "#backfill" in html
