"""Run numbers count within a project (#1, #2, ...), also when runs start at the same moment."""

import threading

import pytest
from django.db import connection as db_connection
from django.urls import reverse

from planner.models import ValidationRun
from tests.conftest import client_for
from tests.factories import ConnectionFactory, ProjectFactory, ValidationRunFactory


def test_each_project_counts_its_own_runs_and_urls_keep_the_primary_key(db):
    a, b = ProjectFactory(), ProjectFactory()
    a1 = ValidationRunFactory(project=a)
    b1 = ValidationRunFactory(project=b)
    a2 = ValidationRunFactory(project=a)
    assert (a1.number, a2.number, b1.number) == (1, 2, 1)
    html = client_for(b.owner).get(reverse("planner:run_show", args=[b.pk, b1.pk])).content
    assert b"Validation #1:" in html
    # another project's run is not reachable by its number through this project
    assert (
        client_for(b.owner).get(reverse("planner:run_show", args=[b.pk, a1.pk])).status_code == 404
    )


@pytest.mark.django_db(transaction=True)
def test_runs_started_at_the_same_moment_get_different_numbers():
    if db_connection.vendor != "postgresql":
        pytest.skip("row locks are what is under test; SQLite serialises writers anyway")
    project = ProjectFactory()
    connections = [ConnectionFactory(project=project) for _ in range(6)]
    barrier = threading.Barrier(len(connections))
    errors = []

    def start(connection):
        try:
            barrier.wait()
            ValidationRun.objects.create(project=project, connection=connection)
        except Exception as exc:  # reported below, the thread must not die silently
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=start, args=(c,)) for c in connections]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = sorted(ValidationRun.objects.filter(project=project).values_list("number", flat=True))
    assert numbers == [1, 2, 3, 4, 5, 6]
