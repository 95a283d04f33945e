"""Copying a project's plan: complete, and never carrying runs, sign-offs, secrets or people."""

import json
from decimal import Decimal

import pytest

from planner.models import (
    Connection,
    FieldMapping,
    IntegrationProject,
    Membership,
    Monitor,
    SignOff,
    SystemEndpoint,
    TestCase,
    ValidationRun,
)
from planner.project_templates import snapshot
from planner.project_templates.builtin import BUILT_IN
from planner.project_templates.snapshot import PARTS, SnapshotError
from tests.factories import (
    MembershipFactory,
    PersonalFieldFactory,
    SignOffFactory,
    UserFactory,
    ready_project,
)

SECRET = "s3cr3t-password-never-copied"  # noqa: S105


@pytest.fixture
def source(db):
    project, connection = ready_project()
    PersonalFieldFactory(mapping=FieldMapping.objects.filter(project=project).first())
    endpoint = SystemEndpoint.objects.filter(project=project).first()
    from planner.runs import secrets

    endpoint.secrets_token = secrets.encrypt_json({"password": SECRET})
    endpoint.save()
    MembershipFactory(project=project, role="editor")
    SignOffFactory(project=project)
    return project


def described(obj, fields) -> dict:
    """A row as comparable values: content fields, and what each link points at by its text."""
    out = {}
    for f in fields:
        value = getattr(obj, f.name)
        out[f.name] = str(value) if f.is_relation and value is not None else value
    return out


def test_the_copy_is_complete_model_by_model_and_field_by_field(source):
    creator = source.owner
    copy = snapshot.instantiate(snapshot.take(source), "Copy", creator)
    for part in PARTS:
        fields = snapshot._copied_fields(part)
        before = [
            described(o, fields) for o in part.model.objects.filter(project=source).order_by("pk")
        ]
        after = [
            described(o, fields) for o in part.model.objects.filter(project=copy).order_by("pk")
        ]
        assert len(before) == len(after), part.key
        assert before == after, part.key
    assert Connection.objects.filter(project=copy).count() >= 1
    assert (
        FieldMapping.objects.filter(project=copy).count()
        == FieldMapping.objects.filter(project=source).count()
        > 0
    )
    # links stay inside the copy
    for monitor in Monitor.objects.filter(project=copy, criterion__isnull=False):
        assert monitor.criterion.project_id == copy.pk
    for row in FieldMapping.objects.filter(project=copy):
        assert row.connection.project_id == copy.pk


def test_the_copy_never_carries_runs_sign_offs_endpoints_members_or_evidence(source):
    creator = UserFactory()
    snap = snapshot.take(source)
    text = json.dumps(snap)
    assert SECRET not in text
    assert "secrets_token" not in text and "validation_run" not in text
    copy = snapshot.instantiate(snap, "Copy", creator)
    assert not ValidationRun.objects.filter(project=copy).exists()
    assert not SignOff.objects.filter(project=copy).exists()
    assert not SystemEndpoint.objects.filter(project=copy).exists()
    assert list(Membership.objects.filter(project=copy).values_list("user", "role")) == [
        (creator.pk, "owner")
    ]
    assert copy.owner == creator
    cases = TestCase.objects.filter(project=copy)
    assert cases.exists()
    assert set(cases.values_list("status", flat=True)) == {TestCase.Status.PLANNED}
    assert not cases.exclude(evidence_file="").exists()
    assert not cases.exclude(evidence_note="").exists()
    assert not cases.filter(validation_run__isnull=False).exists()
    assert not copy.criteria.exclude(evidence_value=None).exists()
    # the copy's history starts with the copy
    assert IntegrationProject.history.filter(id=copy.pk).count() == 1


def test_a_snapshot_survives_json_round_trip(source):
    snap = json.loads(json.dumps(snapshot.take(source)))
    copy = snapshot.instantiate(snap, "From JSON", source.owner)
    assert copy.criteria.first().target == source.criteria.first().target
    assert isinstance(copy.criteria.first().target, Decimal)


def test_a_broken_snapshot_changes_nothing(source):
    snap = snapshot.take(source)
    snap["parts"]["mapping"][0]["connection"] = 999_999  # names no connection of the snapshot
    before = IntegrationProject.objects.count()
    with pytest.raises(SnapshotError, match="mapping: connection names a missing row"):
        snapshot.instantiate(snap, "Broken", source.owner)
    assert IntegrationProject.objects.count() == before
    with pytest.raises(SnapshotError, match="format"):
        snapshot.instantiate({"format": 99}, "Future", source.owner)


@pytest.mark.parametrize("key", sorted(BUILT_IN))
def test_every_built_in_template_makes_a_project(db, key):
    from planner.checklist import golive

    user = UserFactory()
    project = snapshot.instantiate(BUILT_IN[key].snapshot, key, user)
    expected = {k: len(v) for k, v in BUILT_IN[key].snapshot["parts"].items()}
    for part in PARTS:
        assert part.model.objects.filter(project=project).count() == expected.get(part.key, 0), (
            part.key
        )
    assert FieldMapping.objects.filter(project=project).exists()
    assert 0 <= golive.verdict(project).percent < 100  # it reads; nothing is signed


def test_the_five_system_stack_has_five_systems(db):
    project = snapshot.instantiate(BUILT_IN["five-system-stack"].snapshot, "Stack", UserFactory())
    assert project.systems.count() == 5 and project.connections.count() == 4
