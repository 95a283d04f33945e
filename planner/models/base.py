import operator
from functools import cache

from django.db import models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.template.defaultfilters import pluralize
from django.utils.encoding import force_str
from django.utils.hashable import make_hashable


class Comparator(models.TextChoices):
    """How a measured value is compared with a target or a threshold."""

    GT = ">", ">"
    GTE = ">=", "≥"
    LT = "<", "<"
    LTE = "<=", "≤"
    EQ = "=", "="
    NE = "!=", "≠"

    def holds(self, value: float, target: float) -> bool:
        return _COMPARE[self](value, target)

    @property
    def opposite(self) -> "Comparator":
        """The comparison that holds when this one is broken (a criterion's breach)."""
        return _OPPOSITE[self]


_COMPARE = {
    Comparator.GT: operator.gt,
    Comparator.GTE: operator.ge,
    Comparator.LT: operator.lt,
    Comparator.LTE: operator.le,
    Comparator.EQ: lambda a, b: abs(a - b) < 1e-9,
    Comparator.NE: lambda a, b: abs(a - b) >= 1e-9,
}
_OPPOSITE = {
    Comparator.LTE: Comparator.GT,
    Comparator.LT: Comparator.GTE,
    Comparator.GTE: Comparator.LT,
    Comparator.GT: Comparator.LTE,
    Comparator.EQ: Comparator.NE,
    Comparator.NE: Comparator.EQ,
}
# Success criteria are mostly upper bounds ("latency <= 5 minutes"): their menu leads with <=.
UPPER_BOUND_FIRST = [
    (c.value, c.label)
    for c in (Comparator.LTE, Comparator.LT, Comparator.GTE, Comparator.GT, Comparator.EQ)
]


class MetricKey(models.TextChoices):
    """The figures a criterion or a monitor can name: each is one function in planner/metrics.

    EXTERNAL is measured outside Aethon: it counts only with a dated evidence entry.
    """

    AGREEMENT = "agreement_pct", "Agreement (%)"
    MISMATCH_RATE = "mismatch_rate_pct", "Mismatch rate (%)"
    ERROR_RATE = "error_rate_pct", "Error rate (%)"
    AVAILABILITY = "availability_pct", "Systems reachable (%)"
    UNREACHABLE = "unreachable_pct", "Systems unreachable (%)"
    CONNECTIVITY_FAILURES = "connectivity_failures", "Unreachable systems (count)"
    RECORDS_SYNCED = "records_synced", "Records in sync (records)"
    LATENCY = "latency_ms", "Connection latency (ms)"
    FRESHNESS = "freshness_lag", "Propagation lag (share of records within the target time)"
    EXTERNAL = "external", "Measured outside Aethon (needs dated evidence)"


class WindowUnit(models.TextChoices):
    MINUTES = "minutes", "minutes"
    HOURS = "hours", "hours"
    DAYS = "days", "days"


@cache
def _choice_labels(field: models.Field) -> dict:
    return dict(make_hashable(field.flatchoices))


def choice_label(obj: models.Model, name: str) -> str:
    """What `obj.get_<name>_display()` returns, from the field's labels read once.

    Django's method rebuilds the table of labels on every call (a few microseconds); the rows
    of a big step page ask for it hundreds of times."""
    field = obj._meta.get_field(name)
    value = getattr(obj, field.attname)
    return force_str(_choice_labels(field).get(make_hashable(value), value), strings_only=True)


def window_words(value, unit: str) -> str:
    """'1 day', '30 days': a window's length in words, the unit agreeing with the number."""
    label = WindowUnit(unit).label
    return f"{value} {label.removesuffix('s')}{pluralize(value)}"


class VersionedModel(models.Model):
    """An artifact edited by several people: `version` guards against lost updates.

    Every save through `planner.web.concurrency.save_versioned` checks that the version the editor
    started from is still current, then bumps it.
    """

    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db, field_names, values):
        """A whole row read from the database, without `Model.__init__`.

        Plans are read by the thousand rows (the portfolio's verdicts read every project's
        mapping): `__init__` set each field through its descriptor and sent the init signals,
        most of the cost of a row. A fresh row needs neither, unless something listens to
        those signals or some fields were deferred; then it is built the usual way."""
        attnames = _ATTNAMES.get(cls)
        if attnames is None:
            attnames = _ATTNAMES[cls] = tuple(f.attname for f in cls._meta.concrete_fields)
        if len(values) != len(attnames) or (
            # (the receiver lists first: empty, they answer without a lookup per row)
            (pre_init.receivers and pre_init.has_listeners(cls))
            or (post_init.receivers and post_init.has_listeners(cls))
        ):
            return super().from_db(db, field_names, values)
        new = cls.__new__(cls)
        new.__dict__.update(zip(attnames, values, strict=True))
        state = new._state = ModelState()
        state.adding, state.db = False, db
        return new


# Each VersionedModel's column attribute names, in the order rows come back.
_ATTNAMES: dict[type[models.Model], tuple[str, ...]] = {}
