from django.urls import reverse

from planner.models import IntegrationProject, Membership, Role
from tests.conftest import HTMX, client_for
from tests.factories import ProjectFactory, UserFactory


def test_create_project_makes_the_creator_owner(db):
    user = UserFactory()
    client = client_for(user)
    response = client.post(
        reverse("planner:project_create"),
        {"name": "CRM to billing", "business_problem": "Inactive customers invoiced"},
    )
    project = IntegrationProject.objects.get(name="CRM to billing")
    assert response["Location"] == reverse("planner:step", args=[project.pk, 1])
    assert Membership.objects.get(project=project, user=user).role == Role.OWNER


def test_create_project_requires_a_name(db):
    client = client_for(UserFactory())
    response = client.post(reverse("planner:project_create"), {"business_problem": "x"})
    assert "Name: This field is required." in response.content.decode()
    assert not IntegrationProject.objects.exists()


def test_project_list_shows_only_my_projects(db):
    mine, theirs = ProjectFactory(name="Mine"), ProjectFactory(name="Theirs")
    html = client_for(mine.owner).get("/").content.decode()
    assert "Mine" in html and "Theirs" not in html
    assert theirs.pk


def test_owner_invites_by_email_changes_role_and_removes(project, owner_client):
    newcomer = UserFactory(email="Pat@Example.com")
    url = reverse("planner:members", args=[project.pk])
    html = owner_client.post(
        url, {"who": "pat@example.com", "role": "approver"}, **HTMX
    ).content.decode()
    membership = Membership.objects.get(project=project, user=newcomer)
    assert membership.role == Role.APPROVER and newcomer.username in html

    role_url = reverse("planner:member_role", args=[project.pk, membership.pk])
    owner_client.post(role_url, {"role": "editor"}, **HTMX)
    membership.refresh_from_db()
    assert membership.role == Role.EDITOR

    remove_url = reverse("planner:member_remove", args=[project.pk, membership.pk])
    owner_client.post(remove_url, **HTMX)
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_inviting_an_unknown_or_existing_member_says_why(project, owner_client):
    url = reverse("planner:members", args=[project.pk])
    html = owner_client.post(url, {"who": "nobody", "role": "viewer"}).content.decode()
    assert (
        "No account has the username &#x27;nobody&#x27;. Invite by email address instead." in html
    )
    html = owner_client.post(
        url, {"who": project.owner.username, "role": "viewer"}
    ).content.decode()
    assert "is already a member of this project" in html


def test_the_last_owner_cannot_leave_or_be_demoted(project, owner_client):
    own = Membership.objects.get(project=project, user=project.owner)
    owner_client.post(reverse("planner:member_role", args=[project.pk, own.pk]), {"role": "viewer"})
    owner_client.post(reverse("planner:member_remove", args=[project.pk, own.pk]))
    own.refresh_from_db()
    assert own.role == Role.OWNER


def test_editors_cannot_manage_members(project, member):
    client = client_for(member(Role.EDITOR))
    url = reverse("planner:members", args=[project.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"who": "x", "role": "owner"}).status_code == 403


def test_settings_are_the_owners(project, owner_client, member):
    url = reverse("planner:settings", args=[project.pk])
    response = owner_client.post(
        url, {"name": "Renamed", "business_problem": "p", "expected_version": project.version}
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.name == "Renamed"
    assert client_for(member(Role.EDITOR)).post(url, {"name": "Nope"}).status_code == 403
