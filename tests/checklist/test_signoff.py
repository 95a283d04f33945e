"""Sign-offs: content hashes, freshness, staleness events and emails, immutability, history."""

import pytest
from django.contrib import admin
from django.core import mail
from django.test import RequestFactory
from django.urls import reverse

from planner.checklist.evidence import Evidence
from planner.checklist.readiness import AWAITING_SIGN_OFF, COMPLETE, project_readiness
from planner.checklist.registry import STEPS
from planner.checklist.signoff import SignOffRefused, sign, step_hashes
from planner.models import (
    ApproverRequirement,
    Role,
    SignOff,
    SignOffStale,
    SuccessCriterion,
)
from planner.models.signoff import Immutable
from tests.conftest import HTMX, client_for
from tests.factories import (
    CriterionFactory,
    DataElementFactory,
    MembershipFactory,
    ObjectiveFactory,
    SignOffFactory,
    SystemFactory,
    SystemProfileFactory,
    TestCaseFactory,
    UserFactory,
)


@pytest.fixture
def step1_ready(project):
    """Step 1 with every content rule passing."""
    ObjectiveFactory(project=project)
    criterion = CriterionFactory(project=project)
    system = SystemFactory(project=project)
    SystemProfileFactory(system=system)  # discovered: API, docs, authentication, environments
    DataElementFactory(project=project, source_of_truth=system)
    return criterion


@pytest.fixture
def approver(project):
    return MembershipFactory(project=project, role=Role.APPROVER, user__email="alex@example.com")


def current_hash(project, number=1):
    return step_hashes(project, [number])[number]


def sign_url(project, number=1):
    return reverse("planner:signoff", args=[project.pk, number])


def approve(client, project, number=1, **extra):
    data = {"decision": "approve", "comment": "", "content_hash": current_hash(project, number)}
    return client.post(sign_url(project, number), data, **extra)


def edit_criterion(client, criterion, metric):
    prefix = f"criterion-{criterion.pk}-"
    data = {
        prefix + "metric": metric,
        prefix + "metric_key": "external",
        prefix + "comparator": "<=",
        prefix + "target": "5",
        prefix + "unit": "minutes",
        prefix + "attainment_pct": "99.9",
        prefix + "window_value": "30",
        prefix + "window_unit": "days",
        prefix + "expected_version": str(criterion.version),
    }
    url = reverse("planner:criterion_edit", args=[criterion.project_id, criterion.pk])
    return client.post(url, data, **HTMX)


# Content hashes --------------------------------------------------------------------------------


def test_the_hash_depends_on_content_only(project, step1_ready):
    first = current_hash(project)
    assert len(first) == 64 and first == current_hash(project)
    # Saving without a change (version and updated_at move) keeps the hash.
    step1_ready.version += 1
    step1_ready.save()
    assert current_hash(project) == first
    # Creating rows in another order gives the same hash: primary keys do not count.
    step1_ready.metric = "changed"
    step1_ready.save()
    changed = current_hash(project)
    assert changed != first
    step1_ready.metric = "sync latency"
    step1_ready.save()
    assert current_hash(project) == first
    # Another project with the same content has the same hash for the step's content.
    assert set(step_hashes(project)) == set(range(1, 8))


def test_hashing_takes_one_query_per_artifact_model(project, django_assert_num_queries):
    for _ in range(30):
        CriterionFactory(project=project)
        TestCaseFactory(project=project)
    expected = sum(len(step.artifacts) for step in STEPS)
    with django_assert_num_queries(expected):
        step_hashes(project)


# Signing and freshness -------------------------------------------------------------------------


def test_a_step_completes_only_with_a_fresh_required_sign_off(project, step1_ready, approver):
    r = project_readiness(project).for_step(1)
    assert r.state == AWAITING_SIGN_OFF
    assert [f.text for o in r.outcomes for f in o.findings] == ["Awaiting sign-off by an approver."]
    # The owner's approval does not stand in for the approver: it is not even recorded.
    with pytest.raises(SignOffRefused):
        sign(
            project,
            1,
            project.memberships.get(user=project.owner),
            "approve",
            "",
            current_hash(project),
        )
    assert project_readiness(project).for_step(1).state == AWAITING_SIGN_OFF
    made = sign(project, 1, approver, "approve", "Looks right", current_hash(project))
    assert (made.content_hash, made.role) == (current_hash(project), Role.APPROVER)
    r = project_readiness(project).for_step(1)
    assert r.state == COMPLETE and r.fraction == 1.0
    assert not r.signoff.stale


def test_an_edit_makes_the_sign_off_stale_once_and_asks_the_approvers_again(
    project, step1_ready, approver, owner_client, tasks_after_commit
):
    approve(client_for(approver.user), project)
    assert project_readiness(project).for_step(1).state == COMPLETE
    mail.outbox.clear()

    with tasks_after_commit() as queued:
        response = edit_criterion(owner_client, step1_ready, "records in sync")
        # The mail waits for the commit: nothing is sent inside the write's transaction.
        assert mail.outbox == []
    # One mail and, as after every write, the project's standing stored.
    assert len(queued) == 2
    assert sum("store" in getattr(c, "func", c).__name__ for c in queued) == 1
    html = response.content.decode()
    # The edit's own response already shows the stale state in the navigator.
    assert 'data-testid="stale-signoff-1"' in html
    event = SignOffStale.objects.get()
    assert event.signoff.user == approver.user and event.current_hash == current_hash(project)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert "alex@example.com" in message.to
    assert "step 1 changed, please sign off again" in message.subject
    assert f"/projects/{project.pk}/steps/1/#signoff" in message.body

    # Seen again: still stale, no second event, no second email.
    r = project_readiness(project).for_step(1)
    assert r.state == AWAITING_SIGN_OFF and r.signoff.stale
    assert "is stale" in " ".join(f.text for o in r.outcomes for f in o.findings)
    page = owner_client.get(reverse("planner:step", args=[project.pk, 1])).content.decode()
    assert 'data-testid="signoff-stale"' in page
    assert SignOffStale.objects.count() == 1 and len(mail.outbox) == 1

    # Changing it back does not revive the old sign-off: it was stale, and stays so.
    step1_ready.refresh_from_db()
    edit_criterion(owner_client, step1_ready, "sync latency")
    assert project_readiness(project).for_step(1).state == AWAITING_SIGN_OFF

    # A new sign-off on the current version makes the step complete again.
    approve(client_for(approver.user), project)
    r = project_readiness(project).for_step(1)
    assert r.state == COMPLETE and not r.signoff.stale


def test_sign_off_refusals_say_why(project, step1_ready, approver):
    with pytest.raises(SignOffRefused, match="changed since you opened it"):
        sign(project, 1, approver, "approve", "", "0" * 64)
    with pytest.raises(SignOffRefused, match="Comment: say what needs to change"):
        sign(project, 1, approver, "changes", "  ", current_hash(project))
    SuccessCriterion.objects.update(window_value=None)
    with pytest.raises(SignOffRefused, match="cannot be approved while rules fail"):
        sign(project, 1, approver, "approve", "", current_hash(project))
    # Requesting changes is always possible, and is shown as the reason.
    sign(project, 1, approver, "changes", "Add a window", current_hash(project))
    texts = [f.text for o in project_readiness(project).for_step(1).outcomes for f in o.findings]
    assert f"{approver.user.username} requested changes: Add a window" in texts


def test_the_sign_off_view_with_and_without_htmx(project, step1_ready, approver):
    client = client_for(approver.user)
    page = client.get(reverse("planner:step", args=[project.pk, 1])).content.decode()
    assert f'name="content_hash" value="{current_hash(project)}"' in page
    response = approve(client, project, **HTMX)
    html = response.content.decode()
    assert 'id="step-header"' in html and "Complete" in html and "fresh" in html
    # A stale form is refused with the reason, the comment kept.
    data = {"decision": "changes", "comment": "Rename it", "content_hash": "f" * 64}
    response = client.post(sign_url(project), data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Step 1 changed since you opened it" in html and "Rename it" in html
    assert SignOff.objects.count() == 1


def test_only_owners_and_approvers_sign(project, step1_ready, member):
    for role in (Role.EDITOR, Role.VIEWER):
        client = client_for(member(role))
        assert approve(client, project).status_code == 403
        page = client.get(reverse("planner:step", args=[project.pk, 1])).content.decode()
        assert "Record sign-off" not in page
    assert not SignOff.objects.exists()


def policy_data(**changes):
    data = {}
    for n in range(1, 8):
        data[f"step_{n}"] = ["approver"]
        data[f"needed_{n}"] = "1"
        data[f"independent_{n}"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_required_roles_are_configurable_per_project(project, step1_ready, owner_client):
    url = reverse("planner:signoff_policy", args=[project.pk])
    assert "1. Objectives and success criteria" in owner_client.get(url).content.decode()
    data = policy_data(step_1=["owner"], independent_1=None)
    response = owner_client.post(url, data)
    assert response.status_code == 302
    assert ApproverRequirement.objects.get(project=project, step=1).roles == ["owner"]
    assert project_readiness(project).for_step(1).state == AWAITING_SIGN_OFF
    approve(owner_client, project)
    assert project_readiness(project).for_step(1).state == COMPLETE

    # No role required: the step completes on its rules alone.
    owner_client.post(url, {**data, "step_1": []})
    r = project_readiness(project).for_step(1)
    assert r.state == COMPLETE and "signed_off" not in {o.rule.code for o in r.outcomes}


def test_a_step_without_any_approver_says_so(project, step1_ready):
    texts = [f.text for o in project_readiness(project).for_step(1).outcomes for f in o.findings]
    assert texts == [
        "No member has the Approver role: invite one, or change who signs off this step in "
        "the sign-off settings."
    ]


def test_sign_off_state_takes_a_fixed_number_of_queries(project, step1_ready, approver):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sign(project, 1, approver, "approve", "", current_hash(project))

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            project_readiness(project, Evidence.load(project))
        return len(ctx)

    few = count()
    for _ in range(15):
        TestCaseFactory(project=project)
        MembershipFactory(project=project, role=Role.APPROVER)
    assert count() == few
    # The edit that makes it stale is recorded once; after that no hashing is needed.
    CriterionFactory(project=project)
    count()
    assert count() <= few


# One decision per signer and version; only the roles the step asks for -------------------------


def test_a_repeated_decision_on_the_same_version_is_refused(project, step1_ready, approver):
    first = sign(project, 1, approver, "approve", "", current_hash(project))
    when = f"{first.created_at:%d %b %Y %H:%M}"
    expected = (
        f"You already approved version {first.short_hash} of step 1 on {when}. "
        "A new decision is possible once the step changes."
    )
    with pytest.raises(SignOffRefused) as refused:
        sign(project, 1, approver, "approve", "", current_hash(project))
    assert str(refused.value) == expected
    # Changing one's mind on the same version is a second decision too.
    with pytest.raises(SignOffRefused, match="You already approved version"):
        sign(project, 1, approver, "changes", "On second thought", current_hash(project))
    assert SignOff.objects.count() == 1
    # Another signer may still decide on that version, and the signer on a new one.
    other = MembershipFactory(project=project, role=Role.APPROVER)
    sign(project, 1, other, "changes", "Add a window", current_hash(project))
    CriterionFactory(project=project)
    sign(project, 1, approver, "changes", "Which window?", current_hash(project))
    assert SignOff.objects.filter(user=approver.user).count() == 2


def test_a_repeated_request_for_changes_is_refused_too(project, step1_ready, approver):
    sign(project, 1, approver, "changes", "Add a window", current_hash(project))
    with pytest.raises(SignOffRefused, match="You already requested changes on version"):
        sign(project, 1, approver, "changes", "Add a window", current_hash(project))
    assert SignOff.objects.count() == 1


def test_the_database_holds_one_decision_per_signer_and_version(project, approver):
    from django.db import IntegrityError, transaction

    SignOffFactory(project=project, user=approver.user, step=2, content_hash="a" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        SignOffFactory(
            project=project, user=approver.user, step=2, content_hash="a" * 64, decision="changes"
        )
    # Other steps, versions and signers are separate decisions.
    SignOffFactory(project=project, user=approver.user, step=3, content_hash="a" * 64)
    SignOffFactory(project=project, user=approver.user, step=2, content_hash="b" * 64)
    SignOffFactory(project=project, step=2, content_hash="a" * 64)
    assert SignOff.objects.count() == 4


def test_two_decisions_racing_on_one_version_leave_one_and_a_message(
    project, step1_ready, approver, monkeypatch
):
    from planner.checklist import signoff as service

    sign(project, 1, approver, "approve", "", current_hash(project))
    # The other request's decision lands between our check and our insert.
    real = service._earlier_decision
    calls = []

    def missed_once(*args):
        calls.append(args)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(service, "_earlier_decision", missed_once)
    with pytest.raises(SignOffRefused, match="You already approved version"):
        sign(project, 1, approver, "approve", "", current_hash(project))
    assert SignOff.objects.count() == 1 and len(calls) == 2


def test_a_role_the_step_does_not_ask_for_is_refused_not_recorded(project):
    owner = project.memberships.get(user=project.owner)
    with pytest.raises(SignOffRefused) as refused:
        sign(project, 2, owner, "approve", "", current_hash(project, 2))
    assert str(refused.value) == (
        "Step 2 asks for sign-off by: Approver. Your role (Owner) is not one of them."
    )
    # Requesting changes is a decision as well.
    with pytest.raises(SignOffRefused, match="Your role \\(Owner\\) is not one of them"):
        sign(project, 2, owner, "changes", "Rename it", current_hash(project, 2))
    assert not SignOff.objects.exists()


def test_the_view_refuses_a_role_the_step_does_not_ask_for(project, owner_client):
    data = {"decision": "approve", "comment": "", "content_hash": current_hash(project, 2)}
    response = owner_client.post(sign_url(project, 2), data)
    assert response.status_code == 400
    message = "Step 2 asks for sign-off by: Approver. Your role (Owner) is not one of them."
    assert message in response.content.decode()
    html = owner_client.post(sign_url(project, 2), data, **HTMX).content.decode()
    assert message in html and 'id="step-header"' in html
    assert not SignOff.objects.exists()
    assert project_readiness(project).for_step(2).signoff.latest == []


def test_the_view_refuses_a_repeated_decision(project, step1_ready, approver):
    client = client_for(approver.user)
    assert approve(client, project).status_code == 302
    response = approve(client, project)
    assert response.status_code == 400
    assert "You already approved version" in response.content.decode()
    html = approve(client, project, **HTMX).content.decode()
    assert "You already approved version" in html
    assert SignOff.objects.count() == 1


def test_roles_asked_by_the_policy_are_named_and_a_step_asking_nobody_refuses(
    project, step1_ready, approver
):
    ApproverRequirement.objects.create(project=project, step=1, roles=["owner"])
    with pytest.raises(SignOffRefused) as refused:
        sign(project, 1, approver, "approve", "", current_hash(project))
    assert str(refused.value) == (
        "Step 1 asks for sign-off by: Owner. Your role (Approver) is not one of them."
    )
    ApproverRequirement.objects.filter(project=project, step=1).update(roles=["approver", "owner"])
    sign(project, 1, approver, "approve", "", current_hash(project))
    ApproverRequirement.objects.filter(project=project, step=1).update(roles=[])
    owner = project.memberships.get(user=project.owner)
    with pytest.raises(SignOffRefused, match="Step 1 asks for no sign-off"):
        sign(project, 1, owner, "approve", "", current_hash(project))
    assert SignOff.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_first_decision_of_each_signer_version_and_round():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("planner", "0005_golive_reviews_alerts_api")]
    after = [("planner", "0006_signoff_one_decision")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        old_signoff = apps.get_model("planner", "SignOff")
        old_stale = apps.get_model("planner", "SignOffStale")
        # The schema is the old one: the project is made with the model of that state.
        owner_id = UserFactory().pk
        old_project = apps.get_model("planner", "IntegrationProject")
        project_id = old_project.objects.create(name="Migrated", owner_id=owner_id).pk
        same = {"project_id": project_id, "step": 1, "user_id": owner_id}

        def decide(decision="approve", content_hash="0" * 64):
            return old_signoff.objects.create(
                **same, role="approver", decision=decision, content_hash=content_hash
            )

        def went_stale(s):
            old_stale.objects.create(
                project_id=project_id, signoff=s, step=1, current_hash="9" * 64
            )

        first = decide()
        decide("changes")  # a repeat on a live decision: removed
        went_stale(first)
        renewed = decide()  # the step changed and changed back: a new round, kept
        went_stale(decide())  # a repeat in that round: removed, with its stale event
        other_version = decide(content_hash="2" * 64)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)
        # Later migrations too: the tests that run after this one expect the whole schema.
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    left = SignOff.objects.order_by("pk")
    assert [(s.pk, s.round) for s in left] == [
        (first.pk, 0),
        (renewed.pk, 1),
        (other_version.pk, 1),
    ]
    assert [e.signoff_id for e in SignOffStale.objects.all()] == [first.pk]


# Immutability and history ----------------------------------------------------------------------


def test_sign_offs_and_stale_events_cannot_be_changed_or_deleted(project):
    signoff = SignOffFactory(project=project)
    signoff.comment = "rewritten"
    with pytest.raises(Immutable):
        signoff.save()
    with pytest.raises(Immutable):
        signoff.delete()
    with pytest.raises(Immutable):
        SignOff.objects.filter(pk=signoff.pk).update(comment="rewritten")
    with pytest.raises(Immutable):
        SignOff.objects.filter(pk=signoff.pk).delete()
    event = SignOffStale.objects.create(
        project=project, signoff=signoff, step=1, current_hash="1" * 64
    )
    with pytest.raises(Immutable):
        event.save()
    with pytest.raises(Immutable):
        SignOffStale.objects.all().delete()
    assert SignOff.objects.get(pk=signoff.pk).comment == ""


def test_the_admin_shows_sign_offs_read_only(db):
    superuser = UserFactory(is_superuser=True, is_staff=True)
    request = RequestFactory().get("/admin/")
    request.user = superuser
    for model in (SignOff, SignOffStale):
        model_admin = admin.site._registry[model]
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
        assert model_admin.has_view_permission(request)


def test_sign_offs_and_stale_events_are_in_the_history(
    project, step1_ready, approver, owner_client
):
    approve(client_for(approver.user), project)
    edit_criterion(owner_client, step1_ready, "records in sync")
    html = owner_client.get(reverse("planner:history", args=[project.pk])).content.decode()
    assert f"Sign-off: Step 1 approved by {approver.user.username}" in html
    assert f"Stale sign-off: Step 1 approved by {approver.user.username}" in html


def test_no_url_edits_or_deletes_a_sign_off():
    from django.urls import get_resolver

    names = [n for n in get_resolver().reverse_dict if isinstance(n, str)]
    assert not [n for n in names if "signoff" in n and ("edit" in n or "delete" in n)]
