"""The stored step hashes: written by every write path, so a sign-off's currency read from them
is what hashing the artifacts would say, on the dashboard and on the project's own pages."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from planner.api.tokens import create_token
from planner.checklist import golive, signoff
from planner.checklist.signoff import record_stale_signoffs, step_hashes, store_step_hashes
from planner.models import IntegrationProject, Role, SignOff, StepContent
from tests.checklist.test_signoff import edit_criterion
from tests.conftest import client_for
from tests.factories import (
    CriterionFactory,
    MembershipFactory,
    SignOffFactory,
    SystemFactory,
    SystemProfileFactory,
    UserFactory,
    portfolio_project,
)
from tests.steps.test_mapping import CSV
from tests.steps.test_mapping_import import confirm, preview


def signed_hashes(project) -> dict[int, str]:
    """The hashes of the steps with a live sign-off: the ones the write path stores."""
    live = SignOff.objects.filter(project=project, stale_event__isnull=True)
    return step_hashes(project, set(live.values_list("step", flat=True)))


def stored(project) -> dict[int, str]:
    return dict(StepContent.objects.filter(project=project).values_list("step", "content_hash"))


def hashed_on_reading(project, now):
    """The verdict with no stored hash: every signed step hashed from its artifacts."""
    with transaction.atomic():
        StepContent.objects.filter(project=project).delete()
        verdict = golive.verdict(project, now=now)
        transaction.set_rollback(True)
    return verdict


def assert_current(project) -> golive.Verdict:
    """Every stored hash is the step's hash, and the dashboard's verdict is the project page's
    and the one read by hashing every step."""
    project = IntegrationProject.objects.get(pk=project.pk)
    hashes = step_hashes(project)
    assert all(hashes[n] == h for n, h in stored(project).items())
    now = timezone.now()
    dashboard = golive.verdicts([project], now=now)[project.pk]
    assert dashboard == golive.verdict(project, now=now) == hashed_on_reading(project, now)
    return dashboard


def stale_texts(verdict) -> list[str]:
    return [r.text for r in verdict.reasons if r.kind == "signoff" and "is stale" in r.text]


@pytest.fixture
def signed(db):
    """A project with approvals on steps 1, 2 and 3, stored as the sign-off's write path does."""
    owner = UserFactory()
    project = portfolio_project(owner, 1)
    approver = project.memberships.get(role=Role.APPROVER).user
    SignOffFactory(
        project=project, step=2, user=approver, content_hash=step_hashes(project, [2])[2]
    )
    store_step_hashes(project)
    assert stored(project) == signed_hashes(project) and set(stored(project)) == {1, 2, 3}
    assert not stale_texts(assert_current(project))
    return project


def test_reading_a_signed_projects_verdict_hashes_no_artifact(signed, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("hashed on reading")

    monkeypatch.setattr(signoff, "step_hashes_many", refuse)
    golive.verdicts([signed])
    golive.verdict(signed)


def test_a_step_with_no_stored_hash_is_hashed_on_reading(signed):
    criterion = signed.criteria.first()
    criterion.metric = "changed where no write path stores"
    criterion.save()
    StepContent.objects.filter(project=signed, step=1).delete()
    assert stale_texts(assert_current(signed))


def test_an_edit_through_the_step_page_stores_the_new_hash(signed):
    before = stored(signed)
    response = edit_criterion(client_for(signed.owner), signed.criteria.first(), "renamed")
    assert response.status_code == 200
    after = stored(signed)
    assert after[1] != before[1] and {n: after[n] for n in (2, 3)} == {2: before[2], 3: before[3]}
    assert len(stale_texts(assert_current(signed))) == 1


def test_a_delete_through_the_row_view_stores_the_new_hash(signed):
    extra = CriterionFactory(project=signed, metric="to delete")
    store_step_hashes(signed)  # as the add's write path would
    url = reverse("planner:criterion_delete", args=[signed.pk, extra.pk])
    client_for(signed.owner).post(url)
    assert not signed.criteria.filter(pk=extra.pk).exists()
    assert_current(signed)


def test_an_import_through_the_page_stores_the_new_hash(signed):
    connection = signed.connections.get()
    before = stored(signed)[2]
    client = client_for(signed.owner)
    confirm(client, signed, connection, preview(client, signed, connection, CSV.encode()))
    assert signed.field_mappings.filter(target_field="status_code").exists()
    assert stored(signed)[2] != before
    assert any("Step 2" in t for t in stale_texts(assert_current(signed)))


def test_an_import_through_the_api_stores_the_new_hash(signed):
    connection = signed.connections.get()
    before = stored(signed)[2]
    _, raw = create_token(signed.owner, "ci")
    response = client_for(signed.owner).post(
        f"/api/projects/{signed.pk}/connections/{connection.pk}/mapping",
        {"file": SimpleUploadedFile("m.csv", CSV.encode()), "mode": "append"},
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 200, response.content
    assert stored(signed)[2] != before
    assert any("Step 2" in t for t in stale_texts(assert_current(signed)))


def test_a_copy_from_a_template_reads_true_and_leaves_the_source_alone(signed):
    before = stored(signed)
    client = client_for(signed.owner)
    client.post(
        reverse("planner:project_from_template"),
        {"source": f"project:{signed.pk}", "name": "The copy"},
    )
    copy = IntegrationProject.objects.get(name="The copy")
    assert copy.field_mappings.count() == signed.field_mappings.count()
    assert stored(signed) == before
    assert_current(copy)
    assert_current(signed)
    # Nothing of the source's sign-offs comes along: nothing is stored for the copy.
    assert stored(copy) == {}


def test_a_system_deleted_in_the_admin_stores_the_new_hash(signed):
    system = SystemFactory(project=signed)
    SystemProfileFactory(system=system)
    record_stale_signoffs(signed)  # as the add's write path does: step 1's approval is stale
    approver = MembershipFactory(project=signed, role=Role.APPROVER).user
    SignOffFactory(project=signed, step=1, user=approver, content_hash=step_hashes(signed, [1])[1])
    record_stale_signoffs(signed)  # as the sign-off's write path does
    stale_before = len(stale_texts(assert_current(signed)))
    staff = UserFactory(is_staff=True, is_superuser=True)
    url = reverse("admin:planner_system_delete", args=[system.pk])
    assert client_for(staff).post(url, {"post": "yes"}).status_code == 302
    assert not signed.systems.filter(pk=system.pk).exists()
    assert stored(signed)[1] == step_hashes(signed, [1])[1]
    assert len(stale_texts(assert_current(signed))) == stale_before + 1


def test_the_last_editors_of_many_projects_and_steps_take_one_query(db, django_assert_num_queries):
    from planner.checklist.signoff import last_editor, last_editors

    alice, bob = UserFactory(), UserFactory()
    first, second = portfolio_project(alice, 1), portfolio_project(alice, 2)
    for project, who in ((first, bob), (second, alice)):
        criterion = project.criteria.first()
        criterion._history_user = who
        criterion.metric = "edited"
        criterion.save()
    mapping = second.field_mappings.first()
    mapping._history_user = bob
    mapping.rule = "trim"
    mapping.save()
    pairs = [(p.pk, n) for p in (first, second) for n in (1, 2, 3)]
    with django_assert_num_queries(1):
        editors = last_editors(pairs)
    assert editors[(first.pk, 1)] == bob.pk and editors[(second.pk, 1)] == alice.pk
    assert editors[(second.pk, 2)] == bob.pk
    assert editors == {pair: last_editor(IntegrationProject(pk=pair[0]), pair[1]) for pair in pairs}


def test_the_write_path_hashes_only_signed_steps_and_drops_the_others(signed, monkeypatch):
    asked = []
    real = signoff.step_hashes

    def spy(project, steps=None):
        asked.append(set(steps))
        return real(project, steps)

    monkeypatch.setattr(signoff, "step_hashes", spy)
    edit_criterion(client_for(signed.owner), signed.criteria.first(), "renamed")
    assert asked[-1] == {1, 2, 3}  # step 1's approval goes stale with this write
    edit_criterion(client_for(signed.owner), signed.criteria.first(), "renamed again")
    assert asked[-1] == {2, 3}
    assert set(stored(signed)) == {2, 3}
    assert_current(signed)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bypass", ["raw SQL", "QuerySet.update"])
def test_a_write_around_the_write_path_shows_the_sign_off_stale(bypass):
    """A stored hash counts only at the revision it was computed at: a write no write path
    saw (raw SQL, a bulk update, a data migration, a restore) moves the revision, so the
    stored hash is unknown and the step is hashed on reading (nothing written on a GET)."""
    from django.db import connection

    from planner.models import SuccessCriterion

    owner = UserFactory()
    project = portfolio_project(owner, 1)
    store_step_hashes(project)  # as the sign-off's write path does
    before = stored(project)
    assert 1 in before
    client = client_for(owner)
    page = client.get(f"/projects/{project.pk}/steps/1/").content.decode()
    assert "Approval no longer counts" not in page
    _, raw = create_token(owner, "ci")
    api = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}

    criterion = project.criteria.order_by("pk").first()
    if bypass == "raw SQL":
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {SuccessCriterion._meta.db_table} SET metric = %s WHERE id = %s",  # noqa: S608
                ["changed behind the app's back", criterion.pk],
            )
    else:
        SuccessCriterion.objects.filter(pk=criterion.pk).update(metric="changed in bulk")
    assert stored(project) == before  # no write path ran

    page = client.get(f"/projects/{project.pk}/steps/1/").content.decode()
    assert "Approval no longer counts: the step changed since" in page
    verdict = client.get(f"/api/projects/{project.pk}/verdict", **api).json()
    assert any(
        r["kind"] == "signoff" and r["step"] == 1 and "is stale" in r["text"]
        for r in verdict["reasons"]
    )
    assert stored(project) == before  # reading wrote nothing
    now = timezone.now()
    assert golive.verdicts([project], now=now)[project.pk] == golive.verdict(project, now=now)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite counts the stale event after the stamp: the hashes are read again until the "
    "next write (slower, still right)",
)
def test_hashes_stored_by_a_write_that_makes_a_sign_off_stale_hold_after_it(monkeypatch):
    """The stale events are recorded in the transaction that stamps the stored hashes, so the
    pages after the write still read the stored hashes instead of hashing every step."""
    from planner.models import SignOffStale

    owner = UserFactory()
    project = portfolio_project(owner, 1)
    store_step_hashes(project)
    response = edit_criterion(client_for(owner), project.criteria.order_by("pk").first(), "new")
    assert response.status_code == 200
    assert SignOffStale.objects.filter(project=project, step=1).exists()

    def refuse(*args, **kwargs):
        raise AssertionError("hashed on reading")

    monkeypatch.setattr(signoff, "step_hashes_many", refuse)
    assert signoff.current_hashes_many({project.pk: [3]})[project.pk][3] == stored(project)[3]
