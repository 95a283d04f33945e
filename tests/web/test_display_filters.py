"""The one way each kind of value is written on pages and in the runbook PDF."""

from decimal import Decimal

import pytest
from django.template import Context, Template

from planner.models import SuccessCriterion
from planner.models.base import window_words
from planner.models.people import display_name
from planner.templatetags.planner_tags import number, sentence
from tests.factories import UserFactory


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("2.0000"), "2"),
        (Decimal("99.9000"), "99.9"),
        (Decimal("10.0000"), "10"),  # not '1E+1', what Decimal.normalize() prints
        (Decimal("0.0000"), "0"),
        (Decimal("-0.5000"), "-0.5"),
        (97.5, "97.5"),
        (3, "3"),
        (None, ""),
    ],
)
def test_numbers_show_without_trailing_zeros(value, text):
    assert number(value) == text


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (1, "hours", "1 hour"),
        (1, "days", "1 day"),
        (1, "minutes", "1 minute"),
        (2, "days", "2 days"),
        (30, "minutes", "30 minutes"),
        (0, "hours", "0 hours"),
    ],
)
def test_a_window_reads_in_the_right_number(value, unit, text):
    assert window_words(value, unit) == text


def test_a_criterion_of_one_day_reads_one_day():
    c = SuccessCriterion(metric="sync latency", comparator="<=", target=Decimal("5.0000"))
    c.unit, c.window_value, c.window_unit = "minutes", 1, "days"
    c.attainment_pct = Decimal("99.9000")
    assert str(c) == "sync latency <= 5 minutes, 99.9% over 1 day"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("monthly, then quarterly", "monthly, then quarterly."),
        ("monthly, then quarterly.", "monthly, then quarterly."),
        ("  Every month!  ", "Every month!"),
        ("", ""),
    ],
)
def test_free_text_ends_with_one_full_stop(text, shown):
    assert sentence(text) == shown


def test_a_person_is_named_by_full_name_else_username(db):
    dana = UserFactory(username="demo", first_name="Dana", last_name="Reyes")
    plain = UserFactory(username="sam", first_name="", last_name="")
    assert display_name(dana) == "Dana Reyes"
    assert display_name(plain) == "sam"
    assert display_name(None) == ""
    rendered = Template("{% load planner_tags %}{{ a|display_name }}/{{ b|display_name }}")
    assert rendered.render(Context({"a": dana, "b": None})) == "Dana Reyes/"


def test_the_history_diff_shows_stored_numbers_without_trailing_zeros():
    from planner.checklist.audit import display

    criterion = SuccessCriterion(target=Decimal("5.0000"), attainment_pct=Decimal("99.9000"))
    target = SuccessCriterion._meta.get_field("target")
    attainment = SuccessCriterion._meta.get_field("attainment_pct")
    assert (display(target, criterion), display(attainment, criterion)) == ("5", "99.9")


@pytest.mark.parametrize(
    "page, ids",
    [("planner:inventory", "7"), ("planner:step", "7 3"), ("planner:criterion_edit", "7 12")],
)
def test_link_writes_what_url_writes(page, ids):
    def render(tag: str) -> str:
        return Template(f"{{% load planner_tags %}}{{% {tag} '{page}' {ids} %}}").render(Context())

    assert render("link") == render("url")
    assert render("link").startswith("/projects/7/")
