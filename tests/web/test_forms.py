"""Base forms: the select widget written in Python renders what Django's templates render."""

from django import forms

import planner.urls  # noqa: F401 - imports every page, so every form class exists
from planner.web.forms import FastSelect, VersionedForm
from tests.factories import UserFactory, portfolio_project


def _form_classes(cls=VersionedForm):
    for sub in cls.__subclasses__():
        yield sub
        yield from _form_classes(sub)


def test_every_select_renders_as_django_renders_it(db):
    project = portfolio_project(UserFactory())
    connection = project.connections.first()
    arguments = ({"project": project}, {"project": project, "connection": connection})
    arguments += ({"connection": connection}, {})
    compared = set()
    for cls in set(_form_classes()):
        if getattr(getattr(cls, "_meta", None), "model", None) is None:
            continue  # an abstract base
        form = None
        for kwargs in arguments:
            try:
                form = cls(**kwargs)
                break
            except TypeError:
                continue
        assert form is not None, cls
        for name, field in form.fields.items():
            if type(field.widget) is not FastSelect:
                continue
            choices = [str(value) for value, _ in field.choices]
            for value in [None, "", *choices[:3], choices[-1]]:
                expected = forms.Select.render(field.widget, name, value, {"id": f"id_{name}"})
                assert field.widget.render(name, value, {"id": f"id_{name}"}) == expected
            compared.add((cls.__name__, name))
    # model choices (systems, connections, criteria) and plain choices, selected and not
    assert {
        ("SuccessCriterionForm", "freshness_connection"),
        ("DataElementForm", "source_of_truth"),
    } <= compared
    assert ("PatternDecisionForm", "pattern") in compared


def test_escapes_labels_and_values(db):
    widget = FastSelect(choices=[("a&b", "<Ada>"), ("x", 'say "hi"')], attrs={"required": True})
    html = widget.render("who", "a&b")
    assert html == forms.Select.render(widget, "who", "a&b")
    assert '<option value="a&amp;b" selected>&lt;Ada&gt;</option>' in html and " required>" in html


def test_add_forms_offer_the_loaded_systems_and_connections_as_their_querysets_would(db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from planner.checklist.evidence import Evidence
    from planner.web.forms import ProjectScopedForm
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
