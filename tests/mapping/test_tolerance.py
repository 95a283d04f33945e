"""Parsing and applying the tolerance a mapping row states."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from planner.mapping.tolerance import parse_tolerance, tolerance_problem


@pytest.mark.parametrize(
    ("text", "kind", "shown"),
    [
        ("0.000001", "absolute", "± 0.000001"),
        ("1e-6", "absolute", "± 0.000001"),
        ("±2", "absolute", "± 2"),
        ("0.5%", "relative", "± 0.5%"),
        ("500ms", "duration", "± 0:00:00.500000"),
        ("1 s", "duration", "± 0:00:01"),
        ("5min", "duration", "± 0:05:00"),
        ("2h", "duration", "± 2:00:00"),
        ("1d", "duration", "± 1 day, 0:00:00"),
    ],
)
def test_the_forms_a_tolerance_takes(text, kind, shown):
    tolerance = parse_tolerance(text)
    assert tolerance is not None and tolerance.kind == kind and tolerance.describe() == shown


def test_empty_means_exact_and_nonsense_is_named():
    assert parse_tolerance("") is None and parse_tolerance("  ") is None
    with pytest.raises(ValueError, match="'close enough' is not a tolerance"):
        parse_tolerance("close enough")
    with pytest.raises(ValueError, match="unknown unit 'weeks'"):
        parse_tolerance("2 weeks")
    assert tolerance_problem("1s", "integer") == (
        "A duration tolerance needs a date or datetime target type."
    )
    assert tolerance_problem("0.1", "datetime") == (
        "A numeric tolerance needs an integer or decimal target type."
    )
    assert tolerance_problem("0.1", "decimal") is None and tolerance_problem("", "string") is None


def test_absolute_relative_and_duration_in_exact_arithmetic():
    one_e_6 = parse_tolerance("0.000001")
    assert one_e_6.within(Decimal("0.1234567"), Decimal("0.1234568"))
    assert one_e_6.within(Decimal("0.000001"), 0)  # the boundary is inside
    assert not one_e_6.within(Decimal("0.0000011"), 0)
    assert not parse_tolerance("1e-8").within(Decimal("0.1234567"), Decimal("0.1234568"))
    assert one_e_6.within(1e-7, 0.0)  # a float enters as its shortest text
    assert not one_e_6.within(None, 0) and not one_e_6.within("abc", 0)
    half = parse_tolerance("0.5%")
    assert half.within(200, 201) and not half.within(200, 202)
    second = parse_tolerance("1s")
    at = datetime(2024, 1, 1, 10, 0, 0, tzinfo=UTC)
    assert second.within(at, at + timedelta(seconds=1))
    assert not second.within(at, at + timedelta(seconds=1, microseconds=1))
    # Time zones are normalised first; aware meets naive as UTC.
    plus2 = timezone(timedelta(hours=2))
    assert second.within(at, datetime(2024, 1, 1, 12, 0, 0, 500000, tzinfo=plus2))
    assert second.within(at, datetime(2024, 1, 1, 10, 0, 0, 999999))
    assert parse_tolerance("1d").within(date(2024, 1, 1), date(2024, 1, 2))
