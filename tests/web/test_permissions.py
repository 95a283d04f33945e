"""Walk every URL of the app as anonymous, outsider, viewer and owner.

A new page that forgets its permission check fails here: every project URL must be guarded by
`project_access`, and the refusals must be the right ones.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from planner.models import HealthReview, Role
from tests.conftest import HTMX, client_for
from tests.factories import (
    BackfillFactory,
    ConnectionFactory,
    CriterionFactory,
    DataElementFactory,
    ErrorStrategyFactory,
    FieldMappingFactory,
    IncidentFactory,
    MembershipFactory,
    MonitorFactory,
    OwnershipFactory,
    PersonalFieldFactory,
    ProjectFactory,
    RollbackStepFactory,
    RollbackTriggerFactory,
    RolloutPhaseFactory,
    RunbookExportFactory,
    SecurityReviewFactory,
    SystemProfileFactory,
    TestCaseFactory,
    UserFactory,
    ValidationRunFactory,
)

# Not per-project: any signed-in user may list their projects or start a new one.
ACCOUNT_LEVEL = {
    "planner:project_list",
    "planner:project_create",
    "logout",
    "password_change",
    "password_change_done",
    "planner:api_tokens",  # the user's own API tokens
    "planner:governance",  # the user's own projects only
    "planner:governance_csv",
}


def walk(resolver: URLResolver, prefix: str = "", namespace: str = ""):
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from walk(p, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern) and p.name:
            yield f"{namespace}{p.name}", p


def planner_patterns():
    return [(name, p) for name, p in walk(get_resolver()) if name.startswith("planner:")]


@pytest.fixture
def world(db):
    project = ProjectFactory()
    connection = ConnectionFactory(project=project)
    viewer = MembershipFactory(project=project, role=Role.VIEWER)
    objects = {
        "criterion": CriterionFactory(project=project),
        "element": DataElementFactory(project=project),
        "system": connection.source,
        "connection": connection,
        "member": viewer,
        "mapping": FieldMappingFactory(project=project, connection=connection),
        # the guides' practices, per connection
        "ownership": OwnershipFactory(connection=connection),
        "errorstrategy": ErrorStrategyFactory(connection=connection),
        "securityreview": SecurityReviewFactory(connection=connection),
        "backfill": BackfillFactory(connection=connection),
        "systemprofile": SystemProfileFactory(system=connection.source),
        "rolloutphase": RolloutPhaseFactory(project=project),
        "personalfield": None,  # filled in below, on the mapping row
        # steps 4 to 7 and the runbook
        "testcase": TestCaseFactory(
            project=project, evidence_file=SimpleUploadedFile("run.log", b"200 OK")
        ),
        "trigger": RollbackTriggerFactory(project=project),
        "rollbackstep": RollbackStepFactory(project=project),
        "monitor": MonitorFactory(project=project),
        "incident": IncidentFactory(project=project),
        "export": RunbookExportFactory(
            project=project, status="done", file=SimpleUploadedFile("runbook.pdf", b"%PDF-")
        ),
        # validation runs
        "run": ValidationRunFactory(project=project, connection=connection),
        # health reviews
        "review": HealthReview.objects.create(project=project, trigger="manual"),
    }
    objects["personalfield"] = PersonalFieldFactory(mapping=objects["mapping"])
    return {"project": project, "viewer": viewer.user, "objects": objects}


def url_for(name: str, pattern: URLPattern, world) -> str:
    kwargs = {}
    params = pattern.pattern.converters
    if "project_id" in params or name not in ACCOUNT_LEVEL:
        kwargs["project_id"] = world["project"].pk
    kind = pattern.default_args.get("kind")
    if "pk" in params:
        # row views are handed their kind; the others are named <kind>_<action>
        key = kind.name if kind else name.split(":")[1].split("_")[0]
        kwargs["pk"] = world["objects"][key].pk
    if "connection_id" in params:
        kwargs["connection_id"] = world["objects"]["connection"].pk
    if "system_id" in params:
        kwargs["system_id"] = world["objects"]["system"].pk
    if "fmt" in params:
        kwargs["fmt"] = "csv"
    if "direction" in params:
        kwargs["direction"] = "up"
    if "number" in params:
        kwargs["number"] = 1
    if "model" in params:
        kwargs["model"] = "criterion"
        kwargs["object_id"] = world["objects"]["criterion"].pk
    kwargs = {k: v for k, v in kwargs.items() if k in params or k == "project_id"}
    return reverse(name, kwargs=kwargs or None)


def test_every_project_url_is_guarded():
    unguarded = [
        name
        for name, p in planner_patterns()
        if name not in ACCOUNT_LEVEL and not hasattr(p.callback, "project_capabilities")
    ]
    assert unguarded == []


def test_anonymous_is_sent_to_login_everywhere(world, client):
    for name, p in planner_patterns():
        url = url_for(name, p, world)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302, (name, method)
            assert response["Location"].startswith(reverse("login")), (name, method)


@pytest.mark.parametrize("htmx", [False, True])
def test_outsider_sees_nothing_of_the_project(world, htmx):
    client = client_for(UserFactory())
    extra = HTMX if htmx else {}
    for name, p in planner_patterns():
        if name in ACCOUNT_LEVEL:
            continue
        url = url_for(name, p, world)
        for method in ("get", "post"):
            response = getattr(client, method)(url, **extra)
            assert response.status_code == 404, (name, method)
            assert world["project"].name.encode() not in response.content


@pytest.mark.parametrize("htmx", [False, True])
def test_viewer_reads_but_cannot_change(world, htmx):
    client = client_for(world["viewer"])
    extra = HTMX if htmx else {}
    for name, p in planner_patterns():
        if name in ACCOUNT_LEVEL:
            continue
        read, write = p.callback.project_capabilities
        url = url_for(name, p, world)
        get = client.get(url, **extra)
        if read == "view":
            assert get.status_code in (200, 302, 405), (name, get.status_code)
        else:
            assert get.status_code == 403, (name, "get")
        post = client.post(url, {"metric": "changed"}, **extra)
        if write == "view":
            assert post.status_code != 403, name
        else:
            assert post.status_code == 403, (name, "post", post.status_code)
    # and nothing changed
    criterion = world["objects"]["criterion"]
    criterion.refresh_from_db()
    assert criterion.metric == "sync latency"
    assert world["project"].memberships.count() == 2


def test_a_project_id_cannot_reach_another_projects_rows(world):
    """The row views look objects up inside the caller's project only."""
    other = ProjectFactory()
    client = client_for(other.owner)
    criterion = world["objects"]["criterion"]
    url = reverse("planner:criterion_edit", kwargs={"project_id": other.pk, "pk": criterion.pk})
    assert client.get(url).status_code == 404
    assert client.post(url, {f"criterion-{criterion.pk}-metric": "x"}).status_code == 404
