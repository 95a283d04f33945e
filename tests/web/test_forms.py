"""Base forms: add forms offer the rows the page has loaded, as their querysets would."""

import planner.urls  # noqa: F401 - imports every page, so every form class exists
from planner.web.forms import ProjectScopedForm
from tests.factories import UserFactory, portfolio_project


def _form_classes(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _form_classes(sub)


def test_add_forms_offer_the_loaded_systems_and_connections_as_their_querysets_would(db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from planner.checklist.evidence import Evidence
    from tests.factories import ConnectionFactory, SystemFactory

    project = portfolio_project(UserFactory())
    SystemFactory(project=project, name="Åland <ledger>")  # ordering and escaping
    ConnectionFactory(project=project)
    evidence = Evidence.load(project)
    compared = set()
    for cls in set(_form_classes(ProjectScopedForm)):
        if getattr(getattr(cls, "_meta", None), "model", None) is None:
            continue  # an abstract base
        if not (cls.system_fields or cls.connection_fields):
            continue
        queried = cls(project=project, prefix="add")
        loaded = cls(project=project, prefix="add").choices_from(evidence)
        for name in (*cls.system_fields, *cls.connection_fields):
            with CaptureQueriesContext(connection) as ctx:
                html = str(loaded[name])
            assert html == str(queried[name]), (cls.__name__, name)
            assert html.count("<option") == len(evidence.systems) + 1 or name not in (
                cls.system_fields
            )
            assert len(ctx) == 0, (cls.__name__, name)  # no query: the rows were loaded
            compared.add((cls.__name__, name))
    assert {
        ("SuccessCriterionForm", "freshness_connection"),
        ("DataElementForm", "source_of_truth"),
        ("SystemProfileForm", "system"),
        ("OwnershipForm", "connection"),
        ("ConnectionForm", "source"),
    } <= compared
