"""How far a target value may differ from the source and still agree: part of a mapping row.

The text is stated by the team on the mapping row (editor, spreadsheet, runbook):

* empty: the values must be exactly equal;
* a number (``0.000001``, ``1e-6``): an absolute difference, for integer and decimal fields;
* a percentage (``0.5%``): a difference relative to the larger of the two magnitudes;
* a duration (``500ms``, ``1s``, ``5min``, ``2h``, ``1d``): for date and datetime fields.

A run first compares exactly and asks the tolerance only about the values that differ, so a
tolerance can only ever turn a difference into agreement, never invent one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

ABSOLUTE, RELATIVE, DURATION = "absolute", "relative", "duration"
NUMBER_TYPES = ("integer", "decimal")
TIME_TYPES = ("date", "datetime")

_UNITS = {
    "us": timedelta(microseconds=1),
    "µs": timedelta(microseconds=1),
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "second": timedelta(seconds=1),
    "seconds": timedelta(seconds=1),
    "min": timedelta(minutes=1),
    "minute": timedelta(minutes=1),
    "minutes": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "hour": timedelta(hours=1),
    "hours": timedelta(hours=1),
    "d": timedelta(days=1),
    "day": timedelta(days=1),
    "days": timedelta(days=1),
}
_NUMBER = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
_PATTERN = re.compile(rf"^\s*(?:±|\+/-|\+-)?\s*({_NUMBER})\s*(%|[a-zµ]+)?\s*$", re.IGNORECASE)
HELP = (
    "a number (0.000001) for an absolute difference, a percentage (0.5%) for a relative one,"
    " or a duration (500ms, 1s, 5min, 2h, 1d) for dates and timestamps"
)


@dataclass(frozen=True)
class Tolerance:
    kind: str  # ABSOLUTE | RELATIVE | DURATION
    amount: Decimal  # the absolute difference, or the relative one as a fraction (0.5% -> 0.005)
    duration: timedelta = timedelta(0)

    def within(self, a: Any, b: Any) -> bool:
        """True if two differing values agree within this tolerance (nulls never do)."""
        if a is None or b is None:
            return False
        if self.kind == DURATION:
            x, y = _instant(a), _instant(b)
            if x is None or y is None or type(x) is not type(y):
                return False
            return abs(x - y) <= self.duration  # type: ignore[operator]
        m, n = _number(a), _number(b)
        if m is None or n is None or not (m.is_finite() and n.is_finite()):
            return False
        gap = abs(m - n)
        if self.kind == ABSOLUTE:
            return gap <= self.amount
        return gap <= self.amount * max(abs(m), abs(n))

    def describe(self) -> str:
        if self.kind == ABSOLUTE:
            return f"± {self.amount:f}"
        if self.kind == RELATIVE:
            return f"± {(self.amount * 100).normalize():f}%"
        return f"± {self.duration}"


def parse_tolerance(text: str | None) -> Tolerance | None:
    """The tolerance a mapping row states; None when empty. ValueError says what is wrong."""
    text = (text or "").strip()
    if not text:
        return None
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a tolerance: write {HELP}.")
    number, unit = match.group(1), (match.group(2) or "").lower()
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"'{text}' is not a tolerance: write {HELP}.") from None
    if not unit:
        return Tolerance(ABSOLUTE, amount)
    if unit == "%":
        return Tolerance(RELATIVE, amount / 100)
    if unit not in _UNITS:
        raise ValueError(f"'{text}': unknown unit '{unit}'; durations use us, ms, s, min, h or d.")
    try:
        duration = _UNITS[unit] * float(amount)
    except OverflowError:
        raise ValueError(f"'{text}' is too long a duration.") from None
    return Tolerance(DURATION, amount, duration)


def tolerance_problem(text: str | None, target_type: str | None) -> str | None:
    """Why ``text`` cannot be the tolerance of a field of ``target_type`` (None: it can)."""
    try:
        tolerance = parse_tolerance(text)
    except ValueError as exc:
        return str(exc)
    if tolerance is None:
        return None
    if tolerance.kind == DURATION:
        if target_type not in TIME_TYPES:
            return "A duration tolerance needs a date or datetime target type."
    elif target_type not in NUMBER_TYPES:
        return "A numeric tolerance needs an integer or decimal target type."
    return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    try:
        # str() of a float is its shortest round-trip text: 0.1 is 0.1, not 0.1000000000000000055…
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def _instant(value: Any) -> datetime | date | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime):
        # Aware values meet naive ones as UTC, as the exact comparison treats them.
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    if isinstance(value, date):
        return value
    return None
