import pytest

from planner.checklist.patterns import analyse
from planner.models import Connection, PatternDecision
from tests.factories import ConnectionFactory, SystemFactory

P = PatternDecision.Pattern


@pytest.mark.parametrize("n, mesh", [(0, 0), (1, 0), (2, 1), (3, 3), (5, 10), (50, 1225)])
def test_connection_counts(n, mesh):
    systems = SystemFactory.build_batch(n)
    a = analyse(systems, [])
    assert (a.point_to_point_connections, a.hub_connections) == (mesh, n)


def test_fewer_than_two_systems_gives_no_recommendation():
    a = analyse(SystemFactory.build_batch(1), [])
    assert a.recommendation is None
    assert "at least two systems" in a.reasons[0]


def test_two_systems_point_to_point(project):
    a = analyse(SystemFactory.create_batch(2, project=project), [])
    assert a.recommendation == P.POINT_TO_POINT
    assert "1 connection, hub-and-spoke needs 2" in a.reasons[0]


def test_five_systems_hub_and_spoke_with_reasons(project):
    systems = SystemFactory.create_batch(5, project=project)
    conns = [
        ConnectionFactory(project=project, source=systems[i], target=systems[(i + 1) % 5])
        for i in range(5)
    ] + [
        ConnectionFactory(
            project=project,
            source=systems[0],
            target=systems[2],
            volume_per_day=100,
            peak_per_day=900,
            direction=Connection.Direction.BIDIRECTIONAL,
        )
    ]
    a = analyse(systems, conns)
    assert a.recommendation == P.HUB_AND_SPOKE
    text = " ".join(a.reasons)
    assert "needs 10 connections, hub-and-spoke needs 5" in text
    assert "6 connections are already planned" in text
    assert "Peak volume is at least 5x" in text
    assert "1 bidirectional connection" in text


def test_request_driven_consumers_of_one_provider_suggest_a_gateway(project):
    provider, a, b, c = SystemFactory.create_batch(4, project=project)
    conns = [
        ConnectionFactory(
            project=project, source=s, target=provider, trigger=Connection.Trigger.REQUEST
        )
        for s in (a, b, c)
    ]
    result = analyse([provider, a, b, c], conns)
    assert result.recommendation == P.API_GATEWAY
    assert "one system serves 3 consumers" in " ".join(result.reasons)
