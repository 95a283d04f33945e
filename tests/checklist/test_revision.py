"""A project's revision moves with every committed write, whoever writes, and the readiness
kept under it is never shown after a write.

These tests commit (transactional database): the revision is counted when a transaction
commits, and pages keep readiness only outside a transaction.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from planner.api.tokens import create_token
from planner.checklist.evidence import Evidence
from planner.checklist.readiness import current, current_many, project_readiness
from planner.checklist.revision import (
    TRIGGER,
    UNTRACKED,
    Revision,
    revision,
    tracked_tables,
)
from planner.checklist.revision import (
    current_many as revisions,
)
from planner.checklist.signoff import step_hashes
from planner.models import (
    FieldMapping,
    IntegrationProject,
    Objective,
    Role,
    SuccessCriterion,
    System,
)
from tests.conftest import HTMX, client_for
from tests.factories import (
    ConnectionFactory,
    CriterionFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
    portfolio_project,
)

pytestmark = pytest.mark.django_db(transaction=True)


def step_page(client, project, number: int = 1) -> str:
    response = client.get(f"/projects/{project.pk}/steps/{number}/")
    assert response.status_code == 200
    return response.content.decode()


def navigator(html: str) -> str:
    return html[html.index('<nav id="navigator"') : html.index("</nav>")]


def step_state(html: str, number: int) -> str:
    """The state the navigator shows for a step: "Not started", "In progress"..."""
    link = re.search(rf'steps/{number}/".*?<span class="state [a-z_]+">([^<]+)</span>', html, re.S)
    return link[1]


def without_csrf(html: str) -> str:
    return re.sub(r'(X-CSRFToken": "|name="csrfmiddlewaretoken" value=")\w+', r"\1", html)


def installed_tables() -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE t.tgname = %s",
                [TRIGGER],
            )
        else:  # SQLite: one trigger per event, named after the table and the counter
            cursor.execute(
                "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger' "
                "AND name LIKE %s",
                [f"%{TRIGGER}%"],
            )
        return {name for (name,) in cursor.fetchall()}


# PostgreSQL counts a transaction once, at its commit; SQLite counts every row written.
counts_per_transaction = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL counts a transaction once at its commit; SQLite counts each row written",
)


def test_every_table_holding_a_projects_rows_has_its_trigger():
    tables = tracked_tables()
    assert {"planner_integrationproject", "auth_user", "planner_system"} <= set(tables)
    assert {"planner_signoff", "planner_validationrun", "planner_membership"} <= set(tables)
    assert installed_tables() == set(tables)


def test_readiness_reads_only_tables_whose_writes_move_the_revision():
    """What pages keep under a revision is computed from these reads: a table read here that
    no trigger watches would let a kept readiness outlive a change to it."""
    owner = UserFactory()
    read: set[str] = set()
    for variant in range(6):  # a failed run, a go-live, a stale approval, a self-approval...
        project = portfolio_project(owner, variant)
        with CaptureQueriesContext(connection) as ctx:
            project_readiness(project, Evidence.load(project))
        for query in ctx.captured_queries:
            read |= set(re.findall(r'(?:FROM|JOIN)\s+"(\w+)"', query["sql"]))
    assert "planner_signoff" in read and "planner_testcase" in read  # the whole project is read
    # Stored step hashes are read only where stamped with the revision now (`UNTRACKED`).
    stamped = {model._meta.db_table for model in UNTRACKED}
    assert "planner_stepcontent" in read and "planner_stepcontent" in stamped
    assert read - installed_tables() == {"planner_stepcontent"}


@counts_per_transaction
def test_a_committed_write_moves_the_revision_once_a_rollback_or_a_read_never():
    project = ProjectFactory()
    client = client_for(project.owner)  # signing in writes the user's last login
    before = revision(project.pk)
    step_page(client, project)
    assert revision(project.pk) == before  # GET never writes

    # Outside a transaction the record and its history row commit one after the other.
    System.objects.create(project=project, name="CRM")
    created = revision(project.pk)
    assert created > before

    with transaction.atomic():  # three writes and their history, one transaction: one count
        System.objects.create(project=project, name="ERP")
        System.objects.filter(project=project).update(owner="Ops")
        Objective.objects.create(project=project, business_objective="One truth")
    assert revision(project.pk) == created + 1

    with pytest.raises(RuntimeError), transaction.atomic():
        System.objects.create(project=project, name="rolled back")
        raise RuntimeError
    assert revision(project.pk) == created + 1

    other = ProjectFactory()
    other_before = revision(other.pk)
    with transaction.atomic():
        System.objects.filter(project=project).delete()
    assert revision(project.pk) == created + 2
    assert revision(other.pk) == other_before  # another project's rows are not its business


def test_renaming_a_user_moves_the_revision_of_each_of_their_projects():
    user = UserFactory()
    first, second, unrelated = ProjectFactory(), ProjectFactory(), ProjectFactory()
    MembershipFactory(project=first, user=user, role=Role.APPROVER)
    MembershipFactory(project=second, user=user, role=Role.VIEWER)
    before = {p.pk: revision(p.pk) for p in (first, second, unrelated)}
    get_user_model().objects.filter(pk=user.pk).update(first_name="Dana")
    assert revision(first.pk) == before[first.pk] + 1
    assert revision(second.pk) == before[second.pk] + 1
    assert revision(unrelated.pk) == before[unrelated.pk]


def test_the_page_reuses_the_kept_readiness_until_a_write():
    project = ProjectFactory()
    CriterionFactory(project=project)
    client = client_for(project.owner)
    step_page(client, project)
    with CaptureQueriesContext(connection) as first:
        step_page(client, project, 3)
    with CaptureQueriesContext(connection) as again:
        step_page(client, project, 3)
    assert len(again) <= len(first)
    Objective.objects.create(project=project, business_objective="One truth")
    with CaptureQueriesContext(connection) as after_write:
        html = step_page(client, project, 3)
    assert len(after_write) > len(again) + 10  # the whole project read again
    assert step_state(html, 1) == "In progress"


def test_many_projects_kept_readiness_is_read_again_only_for_those_written():
    owner = UserFactory()
    projects = [portfolio_project(owner, n) for n in range(3)]
    first = current_many(projects)
    with CaptureQueriesContext(connection) as again_queries:
        again = current_many(projects)
    assert len(again_queries) == 1  # every revision at once, no step's rows
    assert all(again[p.pk] is first[p.pk] for p in projects)
    assert current(projects[0]) is first[projects[0].pk]  # project pages share what is kept

    written = projects[1]
    Objective.objects.filter(project=written).update(business_objective="")
    after = current_many(projects)
    assert after[projects[0].pk] is first[projects[0].pk]
    assert after[projects[2].pk] is first[projects[2].pk]
    assert after[written.pk] is not first[written.pk]
    assert after[written.pk][1].percent < first[written.pk][1].percent
    assert revisions([p.pk for p in projects] + [0])[0] == Revision(0, "")  # never written


def test_the_dashboard_shows_a_write_at_once_though_it_keeps_readiness():
    owner = UserFactory()
    projects = [portfolio_project(owner, n) for n in range(3)]
    client = client_for(owner)
    client.get("/")  # the first request's own caches
    IntegrationProject.objects.filter(owner=owner).update(version=F("version"))  # all written
    with CaptureQueriesContext(connection) as computed:
        shown = client.get("/").content.decode()
    with CaptureQueriesContext(connection) as kept:
        again = client.get("/").content.decode()
    assert without_csrf(again) == without_csrf(shown)
    assert len(kept) < len(computed) - 10  # no step's rows read again

    written = projects[2]
    cell = rf'>{written.name}</a></td>.*?/go-live/">(\d+)%'
    before = int(re.search(cell, shown, re.S)[1])
    Objective.objects.filter(project=written).update(business_objective="")
    after = int(re.search(cell, client.get("/").content.decode(), re.S)[1])
    assert after < before


def test_each_way_of_writing_changes_what_the_next_page_shows():
    project = ProjectFactory()
    owner = project.owner
    client = client_for(owner)
    shown = step_page(client, project)
    assert step_state(shown, 1) == "Not started"

    # A page's form (htmx), in its own transaction.
    response = client.post(
        f"/projects/{project.pk}/steps/1/objective/",
        {"business_objective": "No inactive customer is invoiced.", "expected_version": ""},
        **HTMX,
    )
    assert response.status_code == 200
    shown = step_page(client, project)
    assert step_state(shown, 1) == "In progress"

    # A bulk update, as workers and imports write: no model save, no signal.
    CriterionFactory(project=project)
    assert "sync latency" not in navigator(shown)
    before = step_page(client, project)
    SuccessCriterion.objects.filter(project=project).update(target=None)
    after = step_page(client, project)
    assert after != before
    assert "Needs metric, target and window" in after

    # The API, importing a mapping with a token.
    source_target = ConnectionFactory(project=project)
    _, raw = create_token(owner, "ci")
    assert step_state(step_page(client, project, 2), 2) == "Not started"
    response = client.post(
        f"/api/projects/{project.pk}/connections/{source_target.pk}/mapping",
        {"file": SimpleUploadedFile("m.csv", b"source field,target field\nid,id\n")},
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 200, response.content
    assert FieldMapping.objects.filter(project=project).exists()
    assert step_state(step_page(client, project, 2), 2) != "Not started"

    # A sign-off decision through its page, then the approver's new name in the step's panel.
    approver = MembershipFactory(project=project, role=Role.APPROVER).user
    approver_client = client_for(approver)
    step_page(approver_client, project)
    response = approver_client.post(
        f"/projects/{project.pk}/steps/1/signoff/",
        {
            "decision": "changes",
            "comment": "Name the billing owner",
            "content_hash": step_hashes(project, [1])[1],
        },
    )
    assert response.status_code == 302, response.content.decode()
    shown = step_page(client, project)
    assert 'data-testid="decision-' in shown
    get_user_model().objects.filter(pk=approver.pk).update(first_name="Zebulon", last_name="Q")
    assert "Zebulon Q" in step_page(client, project)


def test_a_counter_moved_back_never_serves_readiness_of_other_content():
    """A restore (or a counter reset) can make the revision repeat a number it had: what a
    process kept under that number must not be shown for content it was not computed from."""
    from planner.checklist.revision import TABLE

    project = ProjectFactory()
    client = client_for(project.owner)
    first = revision(project.pk)
    assert step_state(step_page(client, project), 1) == "Not started"

    Objective.objects.create(project=project, business_objective="One truth")
    with connection.cursor() as cursor:  # as if restored: the counter back where it was
        cursor.execute(
            f"UPDATE {TABLE} SET revision = %s WHERE project_id = %s",  # noqa: S608
            [first, project.pk],
        )
    assert revision(project.pk) == first
    assert step_state(step_page(client, project), 1) == "In progress"

    with connection.cursor() as cursor:  # the counter's row lost, counting again from 1
        cursor.execute(f"DELETE FROM {TABLE} WHERE project_id = %s", [project.pk])  # noqa: S608
    step_page(client, project)
    Objective.objects.filter(project=project).delete()
    # One count on PostgreSQL; on SQLite the row and its history row are two.
    assert revision(project.pk) == (1 if connection.vendor == "postgresql" else 2)
    assert step_state(step_page(client, project), 1) == "Not started"


@counts_per_transaction
def test_a_stamp_is_given_only_when_no_other_write_was_counted_since_it_was_read():
    from planner.checklist.revision import advance, current

    project = ProjectFactory()
    seen = current(project.pk)
    with transaction.atomic():
        stamp = advance(project.pk, seen)
        System.objects.create(project=project, name="counted with the stamp")
    assert stamp and current(project.pk) == (seen.number + 1, stamp)

    seen = current(project.pk)
    System.objects.create(project=project, name="another writer")  # counted in between
    with transaction.atomic():
        assert advance(project.pk, seen) == ""
    assert current(project.pk).number > seen.number + 1
