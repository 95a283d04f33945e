"""Comment threads: who posts, mentions of members only, edits, resolutions with a change, the
runbook's change log, visibility by membership."""

import pytest
from django.core import mail
from django.urls import reverse

from planner.models import Comment, Notification, Role
from planner.runbook.service import runbook_context
from planner.teamwork import comments
from planner.teamwork.comments import CommentRefused, change_choices, mapping_thread, step_thread
from tests.conftest import client_for
from tests.factories import (
    FieldMappingFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
)


def named(project, role, username):
    return MembershipFactory(project=project, role=role, user=UserFactory(username=username)).user


def test_a_mention_of_a_member_notifies_them_and_mails_after_commit(project, tasks_after_commit):
    ann = named(project, Role.APPROVER, "ann")
    with tasks_after_commit():
        c = comments.post(step_thread(project, 3), project.owner, "@ann can you check the pattern?")
    assert list(c.mentions.all()) == [ann]
    n = Notification.objects.get()
    assert (n.recipient, n.kind) == (ann, "mention")
    assert n.url == reverse("planner:step_comments", args=[project.pk, 3]) + f"#comment-{c.pk}"
    assert [m.to for m in mail.outbox] == [[ann.email]]
    assert "mentioned you on Step 3" in mail.outbox[0].subject


def test_a_mention_of_a_non_member_is_plain_text(project):
    UserFactory(username="mallory")  # exists, but not in this project
    other = ProjectFactory()
    named(other, Role.EDITOR, "bob")  # a member of another project
    c = comments.post(step_thread(project, 1), project.owner, "cc @mallory @bob @nobody")
    assert list(c.mentions.all()) == []
    assert not Notification.objects.exists()
    assert c.body == "cc @mallory @bob @nobody"


def test_mentions_match_case_insensitively_and_skip_emails_and_the_author(project):
    ann = named(project, Role.EDITOR, "Ann.Lee")
    named(project, Role.VIEWER, "bo")
    c = comments.post(
        step_thread(project, 1),
        ann,
        "@ann.lee (me), mail bo@example.com, and @BO, @bo.",
    )
    assert sorted(u.username for u in c.mentions.all()) == ["Ann.Lee", "bo"]
    # the author mentioning themselves is not told; a viewer mentioned is (they read threads)
    assert [n.recipient.username for n in Notification.objects.all()] == ["bo"]


@pytest.mark.parametrize("body", ["", "   ", "x" * 5001])
def test_an_empty_or_long_comment_is_refused(project, body):
    with pytest.raises(CommentRefused) as refused:
        comments.post(step_thread(project, 1), project.owner, body)
    assert refused.value.field == "body"
    assert not Comment.objects.exists()


def test_only_the_author_edits_and_new_mentions_are_told_once(project):
    ann = named(project, Role.EDITOR, "ann")
    cy = named(project, Role.EDITOR, "cy")
    thread = step_thread(project, 2)
    c = comments.post(thread, project.owner, "@ann first")
    with pytest.raises(CommentRefused):
        comments.edit(thread, c, ann, "hijacked")
    comments.edit(thread, c, project.owner, "@ann first, and @cy too")
    c.refresh_from_db()
    assert c.edited_at is not None and c.body.endswith("@cy too")
    assert Notification.objects.filter(recipient=ann).count() == 1
    assert Notification.objects.filter(recipient=cy).count() == 1
    # the history keeps both versions
    assert [h.body for h in c.history.order_by("history_id")] == [
        "@ann first",
        "@ann first, and @cy too",
    ]


def test_resolving_with_a_change_links_a_version_and_reaches_the_runbook(project):
    row = FieldMappingFactory(project=project, source_field="email", target_field="mail")
    row.rule = "trim | lower"
    row.save()
    thread = mapping_thread(project, row.pk)
    c = comments.post(thread, project.owner, "Should email be lower-cased?")
    plain = comments.post(thread, project.owner, "Nothing to change here")
    choices = change_choices(thread)
    assert len(choices) == 2  # created, then changed
    assert all(ch.slug == "mapping" for ch in choices)
    with pytest.raises(CommentRefused) as refused:
        comments.resolve(thread, c, project.owner, "mapping:999999")
    assert refused.value.field == "change"
    comments.resolve(thread, c, project.owner, choices[0].key)
    comments.resolve(thread, plain, project.owner)
    c.refresh_from_db()
    assert c.resolved_with_change and c.change_history_id == choices[0].history_id
    assert "changed" in c.change_summary
    log = runbook_context(project)["resolved_by_change"]
    assert log == [c]  # the plain resolution is not a change
    with pytest.raises(CommentRefused):
        comments.resolve(thread, c, project.owner)  # already resolved
    comments.reopen(c)
    assert runbook_context(project)["resolved_by_change"] == []


def test_a_change_of_another_row_cannot_resolve_this_rows_comment(project):
    row, other = FieldMappingFactory(project=project), FieldMappingFactory(project=project)
    c = comments.post(mapping_thread(project, row.pk), project.owner, "?")
    foreign = change_choices(mapping_thread(project, other.pk))[0].key
    with pytest.raises(CommentRefused):
        comments.resolve(mapping_thread(project, row.pk), c, project.owner, foreign)


def test_a_step_threads_changes_are_its_artifacts(project):
    from tests.factories import CriterionFactory, TestCaseFactory

    CriterionFactory(project=project)
    TestCaseFactory(project=project)
    step1 = {c.slug for c in change_choices(step_thread(project, 1))}
    step4 = {c.slug for c in change_choices(step_thread(project, 4))}
    assert "criterion" in step1 and "testcase" not in step1
    assert step4 == {"testcase"}


def test_the_runbook_prints_resolved_with_change_comments(project, owner_client):
    row = FieldMappingFactory(project=project, source_field="vat", target_field="tax_id")
    thread = mapping_thread(project, row.pk)
    c = comments.post(thread, project.owner, "Trim the VAT number?")
    comments.resolve(thread, c, project.owner, change_choices(thread)[0].key)
    html = owner_client.get(reverse("planner:runbook_preview", args=[project.pk])).content.decode()
    assert 'data-testid="resolved-comments"' in html
    assert "Mapping row vat → tax_id" in html and "Trim the VAT number?" in html


# --- pages: posting, visibility, permissions ---------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.EDITOR, Role.APPROVER])
def test_members_who_edit_or_sign_off_post(project, member, role):
    client = client_for(member(role))
    url = reverse("planner:step_comments", args=[project.pk, 2])
    response = client.post(url, {"body": "Looks right to me"})
    assert response.status_code == 302
    c = Comment.objects.get()
    assert response["Location"] == f"{url}#comment-{c.pk}"
    assert "Looks right to me" in client.get(url).content.decode()


def test_a_viewer_reads_but_does_not_post(project, member):
    comments.post(step_thread(project, 2), project.owner, "Visible to viewers")
    client = client_for(member(Role.VIEWER))
    url = reverse("planner:step_comments", args=[project.pk, 2])
    page = client.get(url).content.decode()
    assert "Visible to viewers" in page and 'name="body"' not in page
    assert client.post(url, {"body": "me too"}).status_code == 403
    c = Comment.objects.get()
    resolve = reverse("planner:comment_resolve", args=[project.pk, c.pk])
    assert client.post(resolve).status_code == 403
    c.refresh_from_db()
    assert c.resolved_at is None


def test_a_non_member_gets_404_on_every_thread_url(project, outsider_client):
    row = FieldMappingFactory(project=project)
    c = comments.post(mapping_thread(project, row.pk), project.owner, "secret plan")
    urls = [
        reverse("planner:step_comments", args=[project.pk, 2]),
        reverse("planner:mapping_comments", args=[project.pk, row.pk]),
        reverse("planner:comment_edit", args=[project.pk, c.pk]),
        reverse("planner:comment_resolve", args=[project.pk, c.pk]),
        reverse("planner:mention_suggest", args=[project.pk]) + "?body=@",
    ]
    for url in urls:
        for method in ("get", "post"):
            response = getattr(outsider_client, method)(url, {"body": "x"})
            assert response.status_code == 404, (url, method)
            assert b"secret plan" not in response.content


def test_another_projects_comment_cannot_be_reached_through_my_project(project, owner_client):
    other = ProjectFactory()
    theirs = comments.post(step_thread(other, 1), other.owner, "theirs")
    for name in ("comment_edit", "comment_resolve"):
        url = reverse(f"planner:{name}", args=[project.pk, theirs.pk])
        assert owner_client.post(url, {"body": "mine now"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.body == "theirs" and theirs.resolved_at is None
    row = FieldMappingFactory(project=other)
    assert (
        owner_client.get(reverse("planner:mapping_comments", args=[project.pk, row.pk])).status_code
        == 404
    )


def test_the_page_refuses_editing_someone_elses_comment(project, member):
    editor = member(Role.EDITOR)
    c = comments.post(step_thread(project, 1), project.owner, "original")
    url = reverse("planner:comment_edit", args=[project.pk, c.pk])
    assert client_for(editor).post(url, {"body": "changed"}).status_code == 403
    c.refresh_from_db()
    assert c.body == "original"
    empty = client_for(project.owner).post(url, {"body": ""})
    assert empty.status_code == 400 and "Comment: This field is required." in empty.content.decode()


def test_resolve_on_the_page_with_a_change_and_reopen(project, owner_client):
    row = FieldMappingFactory(project=project)
    thread = mapping_thread(project, row.pk)
    c = comments.post(thread, project.owner, "?")
    url = reverse("planner:comment_resolve", args=[project.pk, c.pk])
    bad = owner_client.post(url, {"change": "mapping:0"}, follow=True).content.decode()
    assert "Resolved with a change: choose one of the listed changes." in bad
    owner_client.post(url, {"change": change_choices(thread)[0].key})
    c.refresh_from_db()
    assert c.resolved_with_change
    owner_client.post(url, {"reopen": "1"})
    c.refresh_from_db()
    assert c.resolved_at is None and not c.resolved_with_change


def test_the_mention_autocomplete_lists_only_members(project, editor_client):
    named(project, Role.VIEWER, "ann")
    named(ProjectFactory(), Role.EDITOR, "anna")  # another project's member
    url = reverse("planner:mention_suggest", args=[project.pk])
    html = editor_client.get(url, {"body": "hi @an"}).content.decode()
    assert 'data-mention="ann"' in html and "anna" not in html
    assert "data-mention" not in editor_client.get(url, {"body": "no mention"}).content.decode()
    assert "data-mention" not in editor_client.get(url, {"body": "@ann "}).content.decode()


def test_the_mapping_grid_links_each_rows_thread_for_viewers_too(project, member):
    row = FieldMappingFactory(project=project)
    url = reverse("planner:mapping_editor", args=[project.pk, row.connection_id])
    html = client_for(member(Role.VIEWER)).get(url).content.decode()
    assert reverse("planner:mapping_comments", args=[project.pk, row.pk]) in html


def test_the_api_lists_only_this_projects_comments_to_members(project, member, client):
    from planner.api.tokens import create_token

    comments.post(step_thread(project, 1), project.owner, "ours")
    other = ProjectFactory()
    comments.post(step_thread(other, 1), other.owner, "theirs")
    viewer = member(Role.VIEWER)
    token = {"HTTP_AUTHORIZATION": f"Bearer {create_token(viewer, 't')[1]}"}
    listed = client.get(f"/api/projects/{project.pk}/comments", **token).json()
    assert [c["body"] for c in listed] == ["ours"]
    assert client.get(f"/api/projects/{other.pk}/comments", **token).status_code == 404


def test_comments_and_their_resolution_are_on_the_history_page(project, owner_client):
    thread = step_thread(project, 1)
    c = comments.post(thread, project.owner, "Who owns the customer id?")
    comments.resolve(thread, c, project.owner)
    html = owner_client.get(reverse("planner:history", args=[project.pk])).content.decode()
    assert "Who owns the customer id?" in html
    detail = owner_client.get(reverse("planner:history_object", args=[project.pk, "comment", c.pk]))
    assert detail.status_code == 200 and "resolved" in detail.content.decode().lower()
