import os

import pytest
from django.test import Client, RequestFactory
from hypothesis import settings as hypothesis_settings

from planner.models import Role

from .factories import PASSWORD, MembershipFactory, ProjectFactory, UserFactory

# CI sets this so that a missing service or browser fails the run instead of skipping.
REQUIRE_SERVICES = os.environ.get("AETHON_REQUIRE_SERVICES") == "1"

# Property tests explore new examples on every local run; CI replays one fixed series so a
# merge is judged on the same cases each time (a failure found locally becomes a named test).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def project(db):
    return ProjectFactory()


@pytest.fixture
def member(project):
    """Make a user with a role on `project`: member("editor")."""

    def make(role: str = Role.VIEWER):
        if role == Role.OWNER:
            return project.owner
        return MembershipFactory(project=project, role=role).user

    return make


def client_for(user) -> Client:
    client = Client()
    # Client.login() calls authenticate() without a request, which the lockout backend
    # (django-axes) refuses: hand it one, so the password is still really checked.
    request = RequestFactory().post("/accounts/login/")
    assert client.login(request=request, username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def owner_client(project):
    return client_for(project.owner)


@pytest.fixture
def editor_client(member):
    return client_for(member(Role.EDITOR))


@pytest.fixture
def viewer_client(member):
    return client_for(member(Role.VIEWER))


@pytest.fixture
def outsider_client(db):
    return client_for(UserFactory())


HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path_factory):
    """Uploaded evidence and exported runbooks go to a throwaway folder, never var/media."""
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Hashing a factory user's password with PBKDF2 costs ~0.3 s; tests need no real hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(db):
    """A project with one object of every kind a planner URL can name (see tests/urlwalk.py)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from planner.models import Alert, Assignment, Comment, HealthReview
    from tests.factories import (
        BackfillFactory,
        ChangelogEntryFactory,
        ConnectionFactory,
        CriterionFactory,
        DataElementFactory,
        ErrorStrategyFactory,
        FieldMappingFactory,
        FreshnessSettingsFactory,
        ImprovementFactory,
        IncidentFactory,
        MonitorFactory,
        OwnershipFactory,
        PersonalFieldFactory,
        RollbackStepFactory,
        RollbackTriggerFactory,
        RolloutPhaseFactory,
        RunbookExportFactory,
        SecurityReviewFactory,
        SystemProfileFactory,
        TestCaseFactory,
        ValidationRunFactory,
    )

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
        "freshness": FreshnessSettingsFactory(connection=connection),
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
        "improvement": ImprovementFactory(project=project),
        "changelog": ChangelogEntryFactory(project=project),
        "export": RunbookExportFactory(
            project=project, status="done", file=SimpleUploadedFile("runbook.pdf", b"%PDF-")
        ),
        # validation runs
        "run": ValidationRunFactory(project=project, connection=connection),
        # health reviews
        "review": HealthReview.objects.create(project=project, trigger="manual"),
        # alerts
        "alert": Alert.objects.create(
            project=project, fingerprint="f", severity="warning", title="error rate 5 %"
        ),
    }
    objects["personalfield"] = PersonalFieldFactory(mapping=objects["mapping"])
    # working as a team
    objects["comment"] = Comment.objects.create(
        project=project, step=1, author=project.owner, body="What is the target?"
    )
    objects["assignment"] = Assignment.objects.create(
        project=project, kind="step", step=1, assignee=project.owner
    )
    return {"project": project, "viewer": viewer.user, "objects": objects}


@pytest.fixture
def tasks_after_commit(django_capture_on_commit_callbacks):
    """Run what a write queues for after its commit, with Celery tasks executed in place (what a
    worker would do). Use as `with tasks_after_commit(): ...`."""
    from aethon.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield lambda: django_capture_on_commit_callbacks(execute=True)
    app.conf.task_always_eager = eager


@pytest.fixture
def celery_eager():
    """Celery tasks run in place when published (a live server's writes commit for real, so
    what they queue after the commit runs at once, as a worker would)."""
    from aethon.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = eager
