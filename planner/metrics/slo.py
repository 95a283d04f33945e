"""Service-level compliance of a criterion from its time-series points: the one definition of
each figure (compliance, error budget, burn rate) that pages, reviews, alerts, go-live and the
API read.

Points are good/total event counts (planner.models.SliPoint). Raw points older than a few days
are folded into hourly points and deleted in the same transaction (`roll_up`), so summing both
resolutions never counts an event twice. Every figure is one aggregate query in SQL.

The objective (the share of events that must be good) is the criterion's attainment % ("99.9 %
over 30 days"); a criterion without one, measured by a share figure (agreement >= 99.5 %), uses
its target. Multi-window, multi-burn-rate alert rules follow the Google SRE workbook, their
windows scaled to the criterion's window when it is not 30 days.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Expression, F, IntegerField, Max, Min, Q, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from planner.models import MetricKey, SliPoint, SuccessCriterion, WindowUnit

DEFAULT_WINDOW = timedelta(days=30)
REFERENCE_WINDOW = timedelta(days=30)  # the window the SRE workbook's rules are written for

MET, MISSED, NOT_ENOUGH_DATA, NO_OBJECTIVE = "met", "missed", "not_enough_data", "no_objective"
STATE_LABELS = {
    MET: "Met",
    MISSED: "Missed",
    NOT_ENOUGH_DATA: "Not enough data yet",
    NO_OBJECTIVE: "No objective",
}

# Share figures whose target is itself the objective: the good share (>=) or the bad share (<=).
GOOD_SHARE = {MetricKey.AGREEMENT, MetricKey.AVAILABILITY}
BAD_SHARE = {MetricKey.ERROR_RATE, MetricKey.MISMATCH_RATE, MetricKey.UNREACHABLE}


def min_coverage_pct() -> float:
    """How much of its window a criterion must have measured before it is judged met."""
    return float(getattr(settings, "AETHON_SLO_MIN_COVERAGE_PCT", 90))


def rollup_after() -> timedelta:
    return timedelta(days=float(getattr(settings, "AETHON_SLO_ROLLUP_AFTER_DAYS", 3)))


def window_of(criterion: SuccessCriterion) -> timedelta:
    """The criterion's rolling window (default 30 days)."""
    if not criterion.window_value:
        return DEFAULT_WINDOW
    unit = {
        WindowUnit.MINUTES: "minutes",
        WindowUnit.HOURS: "hours",
        WindowUnit.DAYS: "days",
    }.get(criterion.window_unit, "days")
    return timedelta(**{unit: criterion.window_value})


def objective_of(criterion: SuccessCriterion) -> float | None:
    """The share of events that must be good (0..1), or None when the criterion states none."""
    if criterion.attainment_pct is not None:
        return float(criterion.attainment_pct) / 100
    if criterion.target is None:
        return None
    target = float(criterion.target) / 100
    if criterion.metric_key in GOOD_SHARE and criterion.comparator in (">=", ">"):
        return target
    if criterion.metric_key in BAD_SHARE and criterion.comparator in ("<=", "<"):
        return 1 - target
    return None


def judged_by_compliance(criterion: SuccessCriterion) -> bool:
    """Freshness criteria are judged by their compliance over a window, never by one run."""
    return criterion.metric_key == MetricKey.FRESHNESS


# ---------------------------------------------------------------------------------------------
# Burn-rate rules


@dataclass(frozen=True)
class BurnRule:
    name: str  # stable: part of the alert's fingerprint
    long: timedelta  # at the 30-day reference window
    short: timedelta
    threshold: float
    severity: str  # a Monitor.Severity value
    action: str  # page or ticket

    def windows(self, window: timedelta) -> tuple[timedelta, timedelta]:
        scale = window / REFERENCE_WINDOW
        return self.long * scale, self.short * scale


BURN_RULES: tuple[BurnRule, ...] = (
    BurnRule("fast", timedelta(hours=1), timedelta(minutes=5), 14.4, "critical", "page"),
    BurnRule("medium", timedelta(hours=6), timedelta(minutes=30), 6.0, "critical", "page"),
    BurnRule("slow", timedelta(days=3), timedelta(hours=6), 1.0, "warning", "ticket"),
)


def duration_text(d: timedelta) -> str:
    """'1 h', '7.2 h', '30 s': the largest unit that keeps the figure at 1 or more."""
    seconds = d.total_seconds()
    for size, word in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{round(seconds / size, 1):g} {word}"
    return f"{round(seconds, 1):g} s"


@dataclass(frozen=True)
class RuleState:
    rule: BurnRule
    long_window: timedelta
    short_window: timedelta
    long_burn: float | None
    short_burn: float | None

    @property
    def firing(self) -> bool:
        t = self.rule.threshold
        return (
            self.long_burn is not None
            and self.short_burn is not None
            and self.long_burn > t
            and self.short_burn > t
        )

    @property
    def text(self) -> str:
        return (
            f"{self.rule.action} when the burn rate over {duration_text(self.long_window)} "
            f"and over {duration_text(self.short_window)} both exceed {self.rule.threshold:g}"
        )


# ---------------------------------------------------------------------------------------------
# Compliance


@dataclass
class Compliance:
    criterion_id: int
    start: datetime
    end: datetime
    window: timedelta
    objective: float | None
    good: int
    total: int
    first_at: datetime | None
    rules: list[RuleState] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return self.total - self.good

    @property
    def attainment(self) -> float | None:
        """good / total, as a share (None with nothing measured)."""
        return self.good / self.total if self.total else None

    @property
    def attainment_pct(self) -> float | None:
        return None if self.attainment is None else round(100 * self.attainment, 4)

    @property
    def coverage_pct(self) -> float:
        """How much of the window lies after the first measurement in it."""
        if self.first_at is None:
            return 0.0
        span = (self.end - self.start).total_seconds()
        covered = (self.end - max(self.first_at, self.start)).total_seconds()
        return round(min(100.0, max(0.0, 100 * covered / span)), 1) if span > 0 else 0.0

    @property
    def budget(self) -> float | None:
        """Bad events the objective allows over the window: (1 - objective) x total."""
        if self.objective is None or not self.total:
            return None
        return (1 - self.objective) * self.total

    @property
    def budget_left(self) -> float | None:
        return None if self.budget is None else self.budget - self.bad

    @property
    def budget_left_pct(self) -> float | None:
        """Share of the error budget not spent; negative when overspent."""
        if self.budget is None:
            return None
        if self.budget == 0:
            return 100.0 if self.bad == 0 else -100.0 * self.bad
        return round(100 * self.budget_left / self.budget, 2)

    @property
    def state(self) -> str:
        if self.objective is None:
            return NO_OBJECTIVE
        if not self.total:
            return NOT_ENOUGH_DATA
        # Exactly on the objective is met: 999 good of 1,000 meets 99.9 % despite float error.
        if self.attainment < self.objective - 1e-12:
            return MISSED
        if self.coverage_pct < min_coverage_pct():
            return NOT_ENOUGH_DATA
        return MET

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def firing(self) -> list[RuleState]:
        return [r for r in self.rules if r.firing]


def burn_rate(good: int, total: int, objective: float | None) -> float | None:
    """Error rate / allowed error rate (1 = spending the budget exactly over the window)."""
    if objective is None or not total:
        return None
    error_rate = (total - good) / total
    allowed = 1 - objective
    if allowed <= 0:
        return float("inf") if error_rate else 0.0
    return round(error_rate / allowed, 4)


HOUR = timedelta(hours=1)


def _in(start: datetime, end: datetime) -> Q:
    """The points of the window (start, end]: raw points measured after `start` up to `end`
    itself, and every hourly roll-up whose hour ends after `start` (windows are exact to the
    minute over raw points, to the hour over roll-ups)."""
    raw = Q(resolution=SliPoint.Resolution.RAW, at__gt=start)
    hour = Q(resolution=SliPoint.Resolution.HOUR, at__gt=start - HOUR)
    return (raw | hour) & Q(at__lte=end)


def _count_before(column: str, column_params: list, values: list, params: list) -> str:
    """SQL counting how many of `values` (ascending) lie strictly before `column`: a CASE
    tree that halves the values at each level, so a row costs log2(values) comparisons."""

    def tree(lo: int, hi: int) -> str:
        if lo >= hi:
            return str(lo)
        mid = (lo + hi) // 2
        params.extend([*column_params, values[mid]])
        return f"CASE WHEN {column} > %s THEN {tree(mid + 1, hi)} ELSE {tree(lo, mid)} END"

    return tree(0, len(values))


class _EdgesBefore(Expression):
    """How many of `edges` (ascending) lie strictly before a point's `at` or, with
    `hour_ends`, before the end of its hour for an hourly roll-up. Compiled straight to SQL:
    a tree of ORM `Case` expressions over a hundred edges costs more to build than the query
    takes to run."""

    output_field = IntegerField()

    def __init__(self, edges: list[datetime], hour_ends: bool = False):
        super().__init__()
        self.edges, self.hour_ends = edges, hour_ends
        self.at, self.resolution = F("at"), F("resolution")

    def get_source_expressions(self):
        return [self.at, self.resolution]

    def set_source_expressions(self, exprs):
        self.at, self.resolution = exprs

    def as_sql(self, compiler, connection):
        at_sql, at_params = compiler.compile(self.at)
        adapt = connection.ops.adapt_datetimefield_value
        params: list = []
        if not self.hour_ends:
            values = [adapt(t) for t in self.edges]
            return f"({_count_before(at_sql, at_params, values, params)})", params
        res_sql, res_params = compiler.compile(self.resolution)
        params.extend([*res_params, SliPoint.Resolution.HOUR.value])
        # A roll-up's hour ends after an edge when it begins after the edge less an hour.
        hour = _count_before(at_sql, at_params, [adapt(t - HOUR) for t in self.edges], params)
        raw = _count_before(at_sql, at_params, [adapt(t) for t in self.edges], params)
        return f"(CASE WHEN {res_sql} = %s THEN {hour} ELSE {raw} END)", params


@dataclass
class WindowSums:
    """Good and total events of the points summed per window edge they fall between.

    A point is in the window (edges[a], edges[b]] exactly when `_in` puts it there: its `after`
    index (edges before its at, or before the end of its hour for a roll-up) exceeds a, and its
    `upto` index (edges before its at) is at most b. Each (after, upto) pair is summed once in
    SQL; any window over these edges is then a sum over a few pairs, with no further query.
    """

    edges: list[datetime]
    pairs: dict[tuple[int, int], list] = field(default_factory=dict)

    def add(self, after: int, upto: int, good: int, total: int, first: datetime) -> None:
        sums = self.pairs.setdefault((after, upto), [0, 0, first])
        sums[0] += good
        sums[1] += total
        sums[2] = min(sums[2], first)

    def over(self, start: datetime, end: datetime) -> tuple[int, int, datetime | None]:
        """Good, total and the first point's time in the window (start, end]."""
        a, b = self.edges.index(start), self.edges.index(end)
        good = total = 0
        first = None
        for (after, upto), (g, t, f) in self.pairs.items():
            if after > a and upto <= b:
                good += g
                total += t
                first = f if first is None or f < first else first
        return good, total, first


def _window_query(criterion: SuccessCriterion, spans: list[tuple[datetime, datetime]]):
    """The criterion's points in any of `spans` with their (after, upto) edge indexes."""
    edges = sorted({t for span in spans for t in span})
    after, upto = _EdgesBefore(edges, hour_ends=True), _EdgesBefore(edges)
    rows = (
        SliPoint.objects.filter(_in(edges[0], edges[-1]), criterion_id=criterion.pk)
        .order_by()
        .annotate(after=after, upto=upto)
    )
    return edges, rows


def window_sums(criterion: SuccessCriterion, spans: list[tuple[datetime, datetime]]) -> WindowSums:
    """Good/total over each (start, end] of `spans`, all in one query."""
    edges, rows = _window_query(criterion, spans)
    sums = WindowSums(edges)
    for r in rows.values("after", "upto").annotate(g=Sum("good"), t=Sum("total"), f=Min("at")):
        sums.add(r["after"], r["upto"], r["g"], r["t"], r["f"])
    return sums


def _rule_spans(window: timedelta) -> list[tuple[BurnRule, timedelta, timedelta]]:
    return [(rule, *rule.windows(window)) for rule in BURN_RULES]


def compliance_from(
    criterion: SuccessCriterion,
    sums: WindowSums,
    start: datetime,
    end: datetime,
    rules: bool = True,
) -> Compliance:
    """The compliance figure of a criterion over (start, end], with the burn rate of every
    alert rule over windows ending at `end`: the one computation of both, from window sums."""
    objective = objective_of(criterion)
    states = []
    if rules:
        for rule, long, short in _rule_spans(window_of(criterion)):
            burns = [burn_rate(*sums.over(end - w, end)[:2], objective) for w in (long, short)]
            states.append(RuleState(rule, long, short, *burns))
    good, total, first = sums.over(start, end)
    return Compliance(criterion.pk, start, end, end - start, objective, good, total, first, states)


def _spans(criterion: SuccessCriterion, start: datetime, end: datetime, rules: bool) -> list:
    spans = [(start, end)]
    if rules:
        for _rule, long, short in _rule_spans(window_of(criterion)):
            spans += [(end - long, end), (end - short, end)]
    return spans


def compliance(
    criterion: SuccessCriterion,
    end: datetime | None = None,
    start: datetime | None = None,
    rules: bool = True,
) -> Compliance:
    """Compliance of a criterion over its rolling window ending at `end` (now), or over
    [start, end] (a review period); with the burn rate of every alert rule. One query."""
    end = end or timezone.now()
    start = start or end - window_of(criterion)
    sums = window_sums(criterion, _spans(criterion, start, end, rules))
    return compliance_from(criterion, sums, start, end, rules)


# ---------------------------------------------------------------------------------------------
# Series for the plots: points summed per hour in SQL, never one row per measurement.


@dataclass(frozen=True)
class Bucket:
    at: datetime
    good: int
    total: int
    lag_p50: float | None
    lag_p95: float | None
    lag_p99: float | None
    late_now: int | None


@dataclass(frozen=True)
class Sample:
    at: datetime
    compliance_pct: float | None
    budget_left_pct: float | None


@dataclass
class History:
    """What the plots of a criterion show: its compliance now, the rolling compliance at
    every step of the last window, and its points summed per hour over the last two windows."""

    compliance: Compliance
    samples: list[Sample]
    hourly: list[Bucket]
    step: timedelta


def _worst(*values):
    present = [v for v in values if v is not None]
    return max(present) if present else None


def history(criterion: SuccessCriterion, end: datetime | None = None) -> History:
    """Compliance now with its burn rates, the rolling compliance and budget left at every
    step (window / 60, at least an hour) of the last window, and hourly buckets over two
    windows: one query. Each sample is the same figure as `compliance` at its time, from
    exact window edges rather than from the hourly buckets."""
    end = end or timezone.now()
    window = window_of(criterion)
    step = max(window / 60, HOUR)
    times = [end - i * step for i in range(max(1, int(window / step)), -1, -1)]
    spans = _spans(criterion, end - window, end, rules=True)
    spans += [(t - window, t) for t in times] + [(end - 2 * window, end)]
    edges, rows = _window_query(criterion, spans)
    rows = (
        rows.annotate(bucket=Trunc("at", "hour", tzinfo=timezone.get_current_timezone()))
        .values("bucket", "after", "upto")
        .annotate(
            g=Sum("good"),
            t=Sum("total"),
            f=Min("at"),
            p50=Max("lag_p50"),
            p95=Max("lag_p95"),
            p99=Max("lag_p99"),
            late=Max("late_now"),
        )
        .order_by("bucket")
    )
    sums = WindowSums(edges)
    hourly: list[Bucket] = []
    names = ("bucket", "after", "upto", "g", "t", "f", "p50", "p95", "p99", "late")
    for at, after, upto, good, total, first, p50, p95, p99, late in rows.values_list(*names):
        sums.add(after, upto, good, total, first)
        # An hour split by a window edge comes back as several rows: one bucket of them.
        b = Bucket(at, good, total, p50, p95, p99, late)
        if hourly and hourly[-1].at == b.at:
            h = hourly[-1]
            b = Bucket(
                h.at,
                h.good + b.good,
                h.total + b.total,
                _worst(h.lag_p50, b.lag_p50),
                _worst(h.lag_p95, b.lag_p95),
                _worst(h.lag_p99, b.lag_p99),
                _worst(h.late_now, b.late_now),
            )
            hourly[-1] = b
        else:
            hourly.append(b)
    now = compliance_from(criterion, sums, end - window, end)
    samples = []
    for t in times:
        c = now if t == end else compliance_from(criterion, sums, t - window, t, rules=False)
        samples.append(Sample(t, c.attainment_pct, c.budget_left_pct))
    return History(now, samples, hourly, step)


# ---------------------------------------------------------------------------------------------
# Roll-ups


def roll_up(now: datetime | None = None, criterion_id: int | None = None) -> int:
    """Fold raw points older than the roll-up age into hourly points; returns points folded.

    Per criterion, in one transaction that locks the criterion row (so two beats never fold the
    same hour twice) and deletes exactly the raw rows it summed: running it again finds nothing,
    and a raw point that arrives for an hour already rolled up is merged into it next time.
    """
    now = now or timezone.now()
    cutoff = (now - rollup_after()).replace(minute=0, second=0, microsecond=0)
    raw = SliPoint.objects.filter(resolution=SliPoint.Resolution.RAW, at__lt=cutoff)
    # order_by(): the model's default ordering would make DISTINCT one row per point.
    ids = raw.order_by().values_list("criterion_id", flat=True).distinct()
    if criterion_id is not None:
        ids = ids.filter(criterion_id=criterion_id)
    folded = 0
    for cid in list(ids):
        folded += _roll_up_one(cid, cutoff)
    return folded


def _roll_up_one(criterion_id: int, cutoff: datetime) -> int:
    tz = timezone.get_current_timezone()
    with transaction.atomic():
        if not SuccessCriterion.objects.select_for_update().filter(pk=criterion_id).exists():
            return 0
        raw = SliPoint.objects.filter(
            criterion_id=criterion_id, resolution=SliPoint.Resolution.RAW, at__lt=cutoff
        )
        last_id = raw.aggregate(m=Max("pk"))["m"]
        if last_id is None:
            return 0
        # Fold only the rows that exist now (pk <= last_id): one arriving meanwhile waits.
        raw = raw.filter(pk__lte=last_id)
        hours = (
            raw.annotate(hour=Trunc("at", "hour", tzinfo=tz))
            .values("hour")
            .annotate(
                g=Sum("good"),
                t=Sum("total"),
                p50=Max("lag_p50"),
                p95=Max("lag_p95"),
                p99=Max("lag_p99"),
                mx=Max("lag_max"),
                late=Max("late_now"),
                n=Sum("points"),
                c=Count("pk"),
            )
            .order_by("hour")
        )
        hours = list(hours)
        existing = {
            p.at: p
            for p in SliPoint.objects.select_for_update().filter(
                criterion_id=criterion_id,
                resolution=SliPoint.Resolution.HOUR,
                at__in=[h["hour"] for h in hours],
            )
        }
        new, changed, folded = [], [], 0
        for h in hours:
            folded += h["c"]
            p = existing.get(h["hour"])
            if p is None:
                new.append(
                    SliPoint(
                        criterion_id=criterion_id,
                        resolution=SliPoint.Resolution.HOUR,
                        at=h["hour"],
                        good=h["g"],
                        total=h["t"],
                        lag_p50=h["p50"],
                        lag_p95=h["p95"],
                        lag_p99=h["p99"],
                        lag_max=h["mx"],
                        late_now=h["late"],
                        points=h["n"],
                    )
                )
                continue
            p.good += h["g"]
            p.total += h["t"]
            p.points += h["n"]
            for name, key in (
                ("lag_p50", "p50"),
                ("lag_p95", "p95"),
                ("lag_p99", "p99"),
                ("lag_max", "mx"),
                ("late_now", "late"),
            ):
                values = [v for v in (getattr(p, name), h[key]) if v is not None]
                setattr(p, name, max(values) if values else None)
            changed.append(p)
        SliPoint.objects.bulk_create(new, batch_size=1000)
        SliPoint.objects.bulk_update(
            changed,
            ["good", "total", "points", "lag_p50", "lag_p95", "lag_p99", "lag_max", "late_now"],
            batch_size=1000,
        )
        raw.delete()
    return folded
