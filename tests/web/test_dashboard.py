"""The portfolio dashboard: every project's verdict, reviews, alerts and overdue work."""

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from planner.checklist import golive
from planner.models import Membership, Role
from tests.conftest import client_for
from tests.factories import UserFactory, portfolio_project


def _readiness_cells(html: str) -> dict[str, str]:
    """Project name -> the readiness cell's text ("57%" or "100% · ready")."""
    rows = re.findall(r'>(Portfolio \d+)</a></td>.*?/go-live/">([^<]+)</a>', html, re.S)
    return dict(rows)


def test_dashboard_queries_do_not_grow_with_projects(db):
    owner = UserFactory()
    projects = [portfolio_project(owner, n) for n in range(20)]
    reader = UserFactory()
    client = client_for(reader)

    def count() -> tuple[int, str]:
        client.get("/")  # warm-up: first-request caches
        with CaptureQueriesContext(connection) as ctx:
            response = client.get("/")
        assert response.status_code == 200
        return len(ctx), response.content.decode()

    for p in projects[:2]:
        Membership.objects.create(project=p, user=reader, role=Role.VIEWER)
    two, html = count()
    assert len(_readiness_cells(html)) == 2
    for p in projects[2:]:
        Membership.objects.create(project=p, user=reader, role=Role.VIEWER)
    twenty, html = count()
    assert twenty == two
    # and each row shows that project's own verdict
    cells = _readiness_cells(html)
    assert len(cells) == 20
    for p in projects:
        v = golive.verdict(p)
        assert cells[p.name] == f"{v.percent}%" + (" · ready" if v.ready else "")
    live = {p.name for p in projects if golive.verdict(p).live}
    assert live and html.count('<span class="status passed">live</span>') == len(live)


def test_archived_projects_are_listed_apart_without_a_verdict(db):
    owner = UserFactory()
    active, archived = portfolio_project(owner, 1), portfolio_project(owner, 2)
    archived.archived_at = timezone.now()
    archived.save()
    html = client_for(owner).get("/").content.decode()
    assert list(_readiness_cells(html)) == [active.name]
    assert 'data-testid="archived-projects"' in html and archived.name in html
