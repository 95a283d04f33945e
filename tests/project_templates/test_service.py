"""Who may start from what: the page and the API share `create_from_template`."""

import pytest
from django.test import Client
from django.urls import reverse

from planner.api.tokens import create_token
from planner.models import FieldMapping, IntegrationProject, Membership, ProjectTemplate, Role
from planner.project_templates import service
from tests.conftest import client_for
from tests.factories import (
    ConnectionFactory,
    FieldMappingFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
)


@pytest.fixture
def mapped(db):
    project = ProjectFactory(name="Source project")
    connection = ConnectionFactory(project=project)
    FieldMappingFactory(project=project, connection=connection, source_field="secret_source_field")
    return project


def bearer(user) -> dict:
    _, raw = create_token(user, "ci")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.mark.parametrize("role", [Role.OWNER, Role.EDITOR, Role.APPROVER, Role.VIEWER])
def test_any_member_may_copy_a_project_they_can_view(mapped, role):
    user = mapped.owner if role == Role.OWNER else MembershipFactory(project=mapped, role=role).user
    copy = service.create_from_template(user, f"project:{mapped.pk}", "Mine")
    assert copy.owner == user
    assert FieldMapping.objects.filter(project=copy, source_field="secret_source_field").exists()


@pytest.mark.parametrize(
    "source", ["project:{pk}", "template:{tpl}", "builtin:nope", "project:x", "other:1", ""]
)
def test_what_the_user_cannot_see_is_not_found(mapped, source):
    template = service.save_as_template(mapped, mapped.owner, "Team template")
    outsider = UserFactory()
    before = IntegrationProject.objects.count()
    with pytest.raises(service.TemplateNotFound):
        service.create_from_template(
            outsider, source.format(pk=mapped.pk, tpl=template.pk), "Stolen"
        )
    assert IntegrationProject.objects.count() == before


def test_a_saved_template_is_seen_by_its_author_and_the_source_members_only(mapped):
    viewer = MembershipFactory(project=mapped, role=Role.VIEWER).user
    template = service.save_as_template(mapped, mapped.owner, "Team template")
    assert f"template:{template.pk}" in [s.value for s in service.sources_for(viewer)]
    assert f"template:{template.pk}" not in [s.value for s in service.sources_for(UserFactory())]
    # removed from the project, the viewer no longer sees it
    Membership.objects.filter(user=viewer).delete()
    assert f"template:{template.pk}" not in [s.value for s in service.sources_for(viewer)]
    # the author still does after the source is deleted
    mapped.delete()
    assert f"template:{ProjectTemplate.objects.get().pk}" in [
        s.value for s in service.sources_for(template.created_by)
    ]


def test_the_page_lists_built_ins_and_own_projects_but_not_others(mapped, db):
    other = ProjectFactory(name="Someone else's project")
    client = client_for(mapped.owner)
    page = client.get(reverse("planner:project_from_template")).content.decode()
    assert "CRM → billing: customer status" in page and "Five-system stack" in page
    assert "Source project" in page
    assert other.name not in page


def test_the_page_creates_the_project_and_lands_on_it(mapped):
    client = client_for(mapped.owner)
    response = client.post(
        reverse("planner:project_from_template"),
        {"source": "builtin:crm-billing", "name": "New CRM"},
    )
    project = IntegrationProject.objects.get(name="New CRM")
    assert response["Location"] == reverse("planner:overview", args=[project.pk])
    assert project.systems.count() == 2


def test_the_page_refuses_a_source_the_user_cannot_see_by_its_field(mapped):
    client = client_for(UserFactory())
    response = client.post(
        reverse("planner:project_from_template"),
        {"source": f"project:{mapped.pk}", "name": "Stolen"},
    )
    assert response.status_code == 200
    assert b"Start from: Select a valid choice" in response.content
    assert not IntegrationProject.objects.filter(name="Stolen").exists()
    blank = client.post(
        reverse("planner:project_from_template"), {"source": "builtin:crm-billing", "name": ""}
    )
    assert b"Name of the new project: This field is required." in blank.content


def test_save_as_template_is_for_owners(mapped, client):
    url = reverse("planner:template_save", args=[mapped.pk])
    for role in (Role.EDITOR, Role.APPROVER, Role.VIEWER):
        assert (
            client_for(MembershipFactory(project=mapped, role=role).user).post(url).status_code
            == 403
        )
    assert client_for(UserFactory()).post(url).status_code == 404
    assert client.post(url).status_code == 302  # to sign in
    assert not ProjectTemplate.objects.exists()
    response = client_for(mapped.owner).post(url)
    assert response.status_code == 302
    template = ProjectTemplate.objects.get()
    assert template.name == "Source project" and template.source == mapped
    assert template.snapshot["parts"]["mapping"][0]["source_field"] == "secret_source_field"


def test_the_api_creates_from_a_template_with_the_same_rules(mapped):
    api = Client()
    headers = bearer(mapped.owner)
    listed = api.get("/api/templates", **headers).json()
    assert {"builtin:crm-billing", f"project:{mapped.pk}"} <= {s["source"] for s in listed}
    created = api.post(
        "/api/projects/from-template",
        {"source": f"project:{mapped.pk}", "name": "Via API"},
        content_type="application/json",
        **headers,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "Via API" and body["role"] == "owner"
    assert FieldMapping.objects.filter(project_id=body["id"]).count() == 1
    stranger = api.post(
        "/api/projects/from-template",
        {"source": f"project:{mapped.pk}", "name": "Stolen"},
        content_type="application/json",
        **bearer(UserFactory()),
    )
    assert stranger.status_code == 404
    blank = api.post(
        "/api/projects/from-template",
        {"source": "builtin:crm-billing", "name": "  "},
        content_type="application/json",
        **headers,
    )
    assert blank.status_code == 400 and blank.json()["detail"].startswith("name:")
    assert (
        api.post(
            "/api/projects/from-template",
            {"source": "builtin:crm-billing", "name": "x"},
            content_type="application/json",
        ).status_code
        == 401
    )
    assert not IntegrationProject.objects.filter(name__in=["Stolen", "x"]).exists()
