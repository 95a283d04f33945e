"""The portfolio dashboard: every project's verdict, reviews, alerts and overdue work."""

import re
from datetime import UTC, date, datetime, timedelta

from django.db import connection
from django.template import engines
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from planner.checklist import golive, links
from planner.models import HealthReview, Membership, Role
from planner.templatetags.portfolio_tags import portfolio_rows
from tests.conftest import client_for
from tests.factories import ProjectFactory, UserFactory, portfolio_project


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


# The table's rows as the template's loop wrote them before rows were written in Python: the
# reference `portfolio_rows` must match byte for byte.
TEMPLATE_ROWS = """{% load planner_tags %}{% for row in rows %}
    <tr>
      <td><a href="{{ row.overview_url }}">{{ row.project.name }}</a></td>
      <td>{{ row.project.business_problem|truncatechars:110 }}</td>
      <td>{{ row.project.owner|display_name }}</td>
      <td>{{ row.role }}</td>
      <td><a href="{{ row.golive_url }}">{{ row.standing.percent }}%{% if row.standing.ready %} · ready{% endif %}</a></td>
      <td>{% if row.standing.live %}<span class="status passed">live</span>{% else %}<span class="muted">not live</span>{% endif %}</td>
      <td>{% if row.last_review %}<a href="{% url 'planner:review_show' row.project.pk row.last_review.pk %}"><span class="status {{ row.last_review.status }}">{{ row.last_review.get_status_display }}</span></a> <span class="muted">{{ row.last_review.created_at|date:"j M Y" }}</span>{% else %}<span class="muted">—</span>{% endif %}</td>
      <td>{% if row.next_due %}{{ row.next_due|date:"j M Y" }}{% else %}<span class="muted">—</span>{% endif %}</td>
      <td>{% if row.open_alerts %}<a href="{{ row.alerts_url }}"><span class="badge warn">{{ row.open_alerts }}</span></a>{% else %}0{% endif %}</td>
      <td data-testid="overdue-{{ row.project.pk }}">{% if row.overdue_work %}<span class="badge warn">{{ row.overdue_work }}</span>{% else %}0{% endif %}</td>
    </tr>
  {% endfor %}"""  # noqa: E501


def test_rows_written_in_python_read_as_the_templates_did(db):
    named = UserFactory(first_name="Dana", last_name="<Ops> & Co")
    plain = UserFactory()
    odd = ProjectFactory(
        owner=named, name='R&D "sync" <beta>', business_problem="Éxport " + "long words " * 20
    )
    short = ProjectFactory(owner=plain, business_problem="")
    review = HealthReview.objects.create(project=odd, trigger="manual", status="failed")
    # Late in the evening UTC: another day in some time zones, as the date filter shows it.
    review.created_at = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    rows = []
    for project, standing, last, due, alerts, overdue in (
        (odd, golive.Standing(True, 100, None), review, date(2026, 12, 1), 3, 2),
        (short, golive.Standing(False, 57, object()), None, None, 0, 0),
        (odd, golive.Standing(False, 0, None), review, date(2027, 1, 9) - timedelta(1), 1234, 0),
    ):
        rows.append(
            {
                "project": project,
                "overview_url": links.url("planner:overview", project.pk),
                "golive_url": links.url("planner:golive", project.pk),
                "alerts_url": links.url("planner:alerts", project.pk),
                "role": "Owner & editor",
                "standing": standing,
                "last_review": last,
                "next_due": due,
                "open_alerts": alerts,
                "overdue_work": overdue,
            }
        )
    with timezone.override("Pacific/Kiritimati"):  # UTC+14: the review's next day
        expected = engines["django"].from_string(TEMPLATE_ROWS).render({"rows": rows})
        assert portfolio_rows(rows) == expected
    assert "2 Mar 2026" in expected
    assert "· ready" in expected and "&lt;Ops&gt; &amp; Co" in expected and "…" in expected
