"""A gate with no holes: test-case evidence, separation of duties, go-live confirm and revert."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from planner.checklist import golive
from planner.checklist.readiness import AWAITING_SIGN_OFF, COMPLETE, project_readiness
from planner.checklist.signoff import project_hash, sign, step_hashes
from planner.models import (
    ApproverRequirement,
    GoLive,
    GoLiveRevert,
    ReviewSchedule,
    Role,
    SignOffStale,
    SuccessCriterion,
    TestCase,
    ValidationRun,
)
from planner.reviews import golive as going_live
from planner.runbook.service import render_html
from tests.conftest import client_for
from tests.factories import (
    ConnectionFactory,
    CriterionFactory,
    DataElementFactory,
    MembershipFactory,
    ObjectiveFactory,
    SystemFactory,
    SystemProfileFactory,
    TestCaseFactory,
    ValidationRunFactory,
    ready_project,
)


def step4_texts(project) -> list[str]:
    r = project_readiness(project).for_step(4)
    return [f.text for o in r.outcomes for f in o.findings]


def outcome(project, number, code):
    r = project_readiness(project).for_step(number)
    return next(o for o in r.outcomes if o.rule.code == code)


def finished(connection, status, minutes_ago=0):
    when = timezone.now() - timedelta(minutes=minutes_ago)
    return ValidationRunFactory(
        project=connection.project,
        connection=connection,
        status=status,
        created_at=when,
        finished_at=when,
    )


def edit_case(client, case, **changes):
    prefix = f"testcase-{case.pk}-"
    data = {
        "stage": case.stage,
        "scenario": case.scenario,
        "description": case.description,
        "data_set": case.data_set,
        "expected_result": case.expected_result,
        "pass_criterion": case.pass_criterion,
        "owner": case.owner,
        "status": case.status,
        "evidence_note": case.evidence_note,
        "accepted_findings": case.accepted_findings,
        "expected_version": case.version,
        **changes,
    }
    url = reverse("planner:testcase_edit", args=[case.project_id, case.pk])
    return client.post(url, {prefix + k: v for k, v in data.items()})


# Test cases and their evidence -----------------------------------------------------------------


def test_zero_test_cases_never_show_every_case_has_a_criterion_as_passed(project):
    o = outcome(project, 4, "cases_have_criteria")
    assert not o.passed and [f.text for f in o.findings] == ["No test case yet."]
    TestCaseFactory(project=project)
    assert outcome(project, 4, "cases_have_criteria").passed


def test_a_case_cannot_pass_on_a_failed_run_unless_it_states_accepted_findings(
    project, owner_client
):
    connection = ConnectionFactory(project=project)
    failed = finished(connection, ValidationRun.Status.FAILED)
    case = TestCaseFactory(project=project, validation_run=failed)

    # The form refuses "passed", naming the field and the run; nothing changes.
    response = edit_case(owner_client, case, status="passed")
    assert f"Validation run #{failed.number} failed: a case cannot pass on it" in (
        response.content.decode()
    )
    case.refresh_from_db()
    assert case.status == TestCase.Status.PLANNED

    # A case that states which findings it accepts may pass on it.
    response = edit_case(
        owner_client, case, status="passed", accepted_findings="3 legacy rows, fixed in R2"
    )
    assert response.status_code in (200, 302)
    case.refresh_from_db()
    assert case.status == TestCase.Status.PASSED
    assert not any("validation run" in t for t in step4_texts(project))

    # Linking a failed run to a passed case without accepted findings is refused on the run page.
    other = TestCaseFactory(project=project, status="passed", evidence_note="log attached")
    url = reverse("planner:run_link", args=[project.pk, failed.pk])
    response = owner_client.post(url, {"test_case": other.pk}, follow=True)
    assert "it cannot be its evidence" in response.content.decode()
    other.refresh_from_db()
    assert other.validation_run_id is None


def test_a_case_passed_on_a_failed_run_blocks_readiness(project):
    """Data that reached the database another way is still caught by the rule."""
    connection = ConnectionFactory(project=project)
    failed = finished(connection, ValidationRun.Status.FAILED)
    TestCaseFactory(project=project, status="passed", validation_run=failed, description="Batch")
    texts = step4_texts(project)
    assert any(
        f"'Batch' is passed on validation run #{failed.number}, which failed" in t for t in texts
    )


def test_a_later_failed_run_on_the_same_connection_makes_the_case_stale(project):
    connection = ConnectionFactory(project=project)
    passed = finished(connection, ValidationRun.Status.PASSED, minutes_ago=30)
    TestCaseFactory(project=project, status="passed", validation_run=passed, description="One")
    assert not any("stale" in t for t in step4_texts(project))
    # A failed run on another connection says nothing about this case.
    finished(ConnectionFactory(project=project), ValidationRun.Status.FAILED)
    assert not any("stale" in t for t in step4_texts(project))
    later = finished(connection, ValidationRun.Status.FAILED, minutes_ago=5)
    assert any(
        f"'One' is stale: validation run #{later.number} on the same connection failed" in t
        for t in step4_texts(project)
    )


# Separation of duties --------------------------------------------------------------------------


@pytest.fixture
def step1(project):
    ObjectiveFactory(project=project)
    CriterionFactory(project=project)
    system = SystemFactory(project=project)
    SystemProfileFactory(system=system)  # discovered: step 1 asks it of every system
    DataElementFactory(project=project, source_of_truth=system)


def current(project, number=1):
    return step_hashes(project, [number])[number]


def policy_url(project):
    return reverse("planner:signoff_policy", args=[project.pk])


def policy_data(**changes):
    data = {}
    for n in range(1, 8):
        data[f"step_{n}"] = ["approver"]
        data[f"needed_{n}"] = "1"
        data[f"independent_{n}"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_last_editor_and_the_owner_cannot_be_the_only_approvers(project, step1, owner_client):
    ApproverRequirement.objects.create(project=project, step=1, roles=["owner", "approver"])
    editor = MembershipFactory(project=project, role=Role.EDITOR)
    # The editor makes the step's last change, then is made an approver.
    criterion = SuccessCriterion.objects.get(project=project)
    criterion.metric = "records in sync"
    criterion._history_user = editor.user
    criterion.save()
    editor.role = Role.APPROVER
    editor.save()
    owner = project.memberships.get(user=project.owner)

    sign(project, 1, owner, "approve", "", current(project))
    sign(project, 1, editor, "approve", "", current(project))
    r = project_readiness(project).for_step(1)
    assert r.state == AWAITING_SIGN_OFF
    texts = [f.text for o in r.outcomes for f in o.findings]
    assert any("another approver must sign too" in t for t in texts), texts
    page = owner_client.get(reverse("planner:step", args=[project.pk, 1])).content.decode()
    assert ">Approved<" not in page
    assert "Approval does not count alone" in page

    # An independent approver completes it; then the approvals count and read "Approved".
    other = MembershipFactory(project=project, role=Role.APPROVER)
    sign(project, 1, other, "approve", "", current(project))
    assert project_readiness(project).for_step(1).state == COMPLETE
    page = owner_client.get(reverse("planner:step", args=[project.pk, 1])).content.decode()
    assert ">Approved<" in page


def test_a_step_can_require_n_different_approvers(project, step1, owner_client):
    response = owner_client.post(policy_url(project), policy_data(needed_1="2"))
    assert response.status_code == 302
    first, second = (MembershipFactory(project=project, role=Role.APPROVER) for _ in range(2))
    sign(project, 1, first, "approve", "", current(project))
    r = project_readiness(project).for_step(1)
    assert r.state == AWAITING_SIGN_OFF
    assert "1 of 2 approvals" in " ".join(f.text for o in r.outcomes for f in o.findings)
    sign(project, 1, second, "approve", "", current(project))
    assert project_readiness(project).for_step(1).state == COMPLETE
    # Bad input names the field and changes nothing.
    response = owner_client.post(policy_url(project), policy_data(needed_1="0"))
    assert response.status_code == 200
    assert "approvers needed" in response.content.decode()
    assert ApproverRequirement.objects.get(project=project, step=1).approvers_needed == 2


def test_changing_who_signs_is_recorded_notifies_and_makes_the_sign_offs_stale(
    project, step1, owner_client, tasks_after_commit
):
    approver = MembershipFactory(project=project, role=Role.APPROVER, user__email="al@example.com")
    sign(project, 1, approver, "approve", "", current(project))
    assert project_readiness(project).for_step(1).state == COMPLETE
    mail.outbox.clear()
    with tasks_after_commit():
        response = owner_client.post(policy_url(project), policy_data(needed_1="2"))
    assert response.status_code == 302
    event = SignOffStale.objects.get()
    assert event.signoff.user == approver.user and "Who must sign changed" in event.reason
    assert [m.to for m in mail.outbox] == [["al@example.com"]]
    assert "Who must sign changed" in mail.outbox[0].body
    requirement = ApproverRequirement.objects.get(project=project, step=1)
    assert requirement.history.count() == 1  # the change itself is in the history
    r = project_readiness(project).for_step(1)
    assert r.state == AWAITING_SIGN_OFF and r.signoff.stale
    # Saving the same settings again changes nothing and asks nobody.
    with tasks_after_commit():
        owner_client.post(policy_url(project), policy_data(needed_1="2"))
    assert SignOffStale.objects.count() == 1 and len(mail.outbox) == 1


def test_a_decision_that_does_not_count_is_never_shown_as_approved(project, step1, owner_client):
    approver = MembershipFactory(project=project, role=Role.APPROVER)
    sign(project, 1, approver, "approve", "", current(project))
    # The signer loses the role: the decision stays in the record but does not count.
    approver.role = Role.VIEWER
    approver.save()
    page = owner_client.get(reverse("planner:step", args=[project.pk, 1])).content.decode()
    assert "Approval does not count: the signer no longer has this role" in page
    assert ">Approved<" not in page
    html = render_html(project)
    assert "Approval does not count" in html
    assert "<td>Approved</td>" not in html


# Go-live: confirmation, history, revert ---------------------------------------------------------


def test_going_live_asks_for_confirmation_and_records_the_evidence(db):
    project, connection = ready_project()
    client = client_for(project.owner)
    url = reverse("planner:golive", args=[project.pk])
    page = client.get(url).content.decode()
    assert 'name="confirm"' in page
    version = project_hash(step_hashes(project))
    # Without the tick: refused, nothing recorded.
    response = client.post(url, {"version": version}, follow=True)
    assert "Confirm: tick the box" in response.content.decode()
    assert not GoLive.objects.exists()
    # With a version that is no longer current: refused.
    response = client.post(url, {"confirm": "yes", "version": "0" * 64}, follow=True)
    assert "changed since you opened this page" in response.content.decode()
    assert not GoLive.objects.exists()
    response = client.post(url, {"confirm": "yes", "version": version})
    assert response.status_code == 302
    live = GoLive.objects.get(project=project)
    evidence = live.snapshot["evidence"]
    run = connection.validation_runs.get()
    assert evidence["runs"] == [
        {
            "connection": str(connection),
            "run": run.pk,
            "status": "passed",
            "finished_at": run.finished_at.isoformat(),
        }
    ]
    assert len(evidence["test_cases"]) == TestCase.objects.filter(project=project).count()
    assert live.snapshot["version"] == version
    history = client.get(reverse("planner:history", args=[project.pk])).content.decode()
    assert "go-live" in history


def test_revert_needs_a_reason_is_recorded_and_stops_the_reviews(db):
    project, _ = ready_project()
    live = going_live.mark_live(project, project.owner)
    assert ReviewSchedule.objects.get(project=project).next_due is not None
    client = client_for(project.owner)
    url = reverse("planner:golive_revert", args=[project.pk])
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    assert client_for(viewer).post(url, {"reason": "x"}).status_code == 403
    response = client.post(url, {"reason": "  "}, follow=True)
    assert "Reason: say why" in response.content.decode()
    assert not GoLiveRevert.objects.exists()

    response = client.post(url, {"reason": "Billing rejects VAT ids"}, follow=True)
    revert = GoLiveRevert.objects.get()
    assert (revert.go_live, revert.user, revert.reason) == (
        live,
        project.owner,
        "Billing rejects VAT ids",
    )
    page = response.content.decode()
    assert "Ready to go live" in page and "Billing rejects VAT ids" in page
    assert not golive.verdict(project).live
    assert ReviewSchedule.objects.get(project=project).next_due is None
    # Live again: a new record; both stay in the history.
    going_live.mark_live(project, project.owner)
    assert GoLive.objects.filter(project=project).count() == 2
    assert golive.verdict(project).live.pk != live.pk


def test_after_go_live_the_page_shows_the_live_state_and_what_changed(db):
    project, _ = ready_project()
    going_live.mark_live(project, project.owner)
    client = client_for(project.owner)
    url = reverse("planner:golive", args=[project.pk])
    page = client.get(url).content.decode()
    assert "Nothing: every step is as it was" in page
    assert "What blocks go-live" not in page
    # The live state in green, not the red 'blocked' box, with who and when.
    assert 'class="verdict live"' in page and "verdict blocked" not in page
    live = golive.verdict(project).live
    assert f"marked by {project.owner.get_username()}" in page
    # The evidence it went live on: each connection's run, the approvals, the test cases.
    evidence = page.split('data-testid="live-evidence"')[1].split("</section>")[0]
    for run in live.snapshot["evidence"]["runs"]:
        assert f"run #{run['run']}</a>" in evidence
    approvals = live.snapshot["evidence"]["approvals"]
    assert evidence.count("<li>Step ") == len(approvals)
    assert ("None recorded." in evidence) is not approvals
    cases = live.snapshot["evidence"]["test_cases"]
    assert cases and all(c["case"] in evidence for c in cases)
    assert "Revert to not live" in page
    CriterionFactory(project=project, metric="error rate", unit="%")
    page = client.get(url).content.decode()
    assert 'data-testid="since-live"' in page
    assert "Step 1: Objectives and success criteria</a> differs" in page
    assert "What blocks go-live" not in page and 'class="reasons"' not in page


# Many projects at once (the portfolio dashboard) ------------------------------------------------


def test_verdicts_of_many_projects_are_each_projects_own_verdict(db):
    from tests.factories import ProjectFactory, UserFactory, portfolio_project

    owner = UserFactory()
    varied = [portfolio_project(owner, n) for n in range(6)]
    archived = portfolio_project(owner, 7)
    archived.archived_at = timezone.now()
    archived.save()
    empty = ProjectFactory(owner=owner)
    ready, _ = ready_project()
    live, _ = ready_project()
    GoLive.objects.create(project=live, user=live.owner)
    projects = [*varied, archived, empty, ready, live]
    now = timezone.now()

    many = golive.verdicts(projects, now=now)

    assert many == {p.pk: golive.verdict(p, now=now) for p in projects}
    # The set is varied: ready and not, live and not, and every kind of blocking reason.
    assert many[ready.pk].ready and many[live.pk].ready and many[live.pk].live
    assert not many[empty.pk].ready and many[empty.pk].percent == 0
    assert {v.live is not None for v in many.values()} == {True, False}
    kinds = {r.kind for v in many.values() for r in v.reasons}
    assert kinds == {"rule", "signoff", "run", "criterion", "parallel_run"}
    texts = [r.text for v in many.values() for r in v.reasons]
    assert any("is stale" in t for t in texts)
    assert any("another approver must sign too" in t for t in texts)
    assert any("failed" in t for t in texts)


def test_standings_are_what_each_verdict_says_of_ready_percent_and_live(db):
    """The list pages read standings: the gate's facts only for projects whose readiness
    passes, yet ready, percent and live are each project's own verdict's."""
    from tests.factories import ProjectFactory, UserFactory, portfolio_project

    owner = UserFactory()
    ready, _ = ready_project()
    live, _ = ready_project()
    GoLive.objects.create(project=live, user=live.owner)
    old_run, _ = ready_project()  # readiness passes; its latest run is too old
    long_ago = timezone.now() - timedelta(days=30)
    ValidationRun.objects.filter(project=old_run).update(created_at=long_ago, finished_at=long_ago)
    projects = [*(portfolio_project(owner, n) for n in range(4)), ProjectFactory(), ready, live]
    projects.append(old_run)
    now = timezone.now()

    standings = golive.standings(projects, now=now)

    verdicts = {p.pk: golive.verdict(p, now=now) for p in projects}
    assert standings == {
        pk: golive.Standing(v.ready, v.percent, v.live) for pk, v in verdicts.items()
    }
    assert standings[ready.pk].ready and standings[live.pk].live
    assert not standings[old_run.pk].ready
    assert not any(r.kind in ("rule", "signoff") for r in verdicts[old_run.pk].reasons)
    assert {s.ready for s in standings.values()} == {True, False}
