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
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from django.conf import settings
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    Expression,
    F,
    IntegerField,
    Max,
    Min,
    Q,
    Sum,
    When,
)
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
    # "Agreement = 100 %" and "mismatch rate = 0 %" are the bounds ">= 100" and "<= 0".
    key, comparator = criterion.metric_key, criterion.comparator
    if key in GOOD_SHARE and (comparator in (">=", ">") or (comparator == "=" and target == 1)):
        return target
    if key in BAD_SHARE and (comparator in ("<=", "<") or (comparator == "=" and target == 0)):
        return 1 - target
    return None


def strict_of(criterion: SuccessCriterion) -> bool:
    """Whether the objective itself must be beaten, not just reached: a share criterion
    stated with > or < ("agreement > 99 %"), judged on one run by Comparator.holds alike."""
    if criterion.attainment_pct is not None or criterion.target is None:
        return False
    return (criterion.metric_key in GOOD_SHARE and criterion.comparator == ">") or (
        criterion.metric_key in BAD_SHARE and criterion.comparator == "<"
    )


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


def over_threshold(good: int, total: int, objective: float | None, threshold: float) -> bool:
    """Whether the burn rate of good/total exceeds `threshold`, in exact fractions: the burn
    shown is rounded and floats put 1 bad of 1,000 at 99.9 % a hair over a burn of 1."""
    if objective is None or not total:
        return False
    allowed = 1 - Fraction(objective).limit_denominator(10**9)
    bad = Fraction(total - good, total)
    if allowed <= 0:
        return bad > 0
    return bad > Fraction(threshold).limit_denominator(10**6) * allowed


@dataclass(frozen=True)
class RuleState:
    rule: BurnRule
    long_window: timedelta
    short_window: timedelta
    long_burn: float | None
    short_burn: float | None
    # Whether each window's burn exceeds the threshold, from its counts (`over_threshold`).
    long_over: bool | None = None
    short_over: bool | None = None

    @property
    def firing(self) -> bool:
        t = self.rule.threshold
        if self.long_over is not None and self.short_over is not None:
            return self.long_over and self.short_over
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
    strict: bool = False  # the objective must be beaten (strict_of)

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
    def objective_text(self) -> str | None:
        """The objective as people read it: '99.9%', or 'more than 99%' when it must be beaten
        (exactly on it is missed, which '99% against 99%' would not explain)."""
        if self.objective is None:
            return None
        pct = f"{round(100 * self.objective, 4):g}%"
        return f"more than {pct}" if self.strict else pct

    @property
    def state(self) -> str:
        if self.objective is None:
            return NO_OBJECTIVE
        if not self.total:
            return NOT_ENOUGH_DATA
        # Exactly on the objective is met: 999 good of 1,000 meets 99.9 % despite float error;
        # unless the criterion says more than (less than, for a bad share) its target.
        if self.attainment < self.objective - 1e-12:
            return MISSED
        if self.strict and self.attainment <= self.objective + 1e-12:
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
_TICK = timedelta(microseconds=1)


def _floor_hour(moment: datetime) -> datetime:
    """The UTC hour (as roll-ups truncate) that `moment` lies in. Hours are UTC whatever the
    site's time zone: a local hour is two hours long the night clocks go back, and it would
    fold two hours into one roll-up."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_of():
    """The hour a point belongs to, as an SQL expression: hour h holds the points measured in
    (h, h + 1 h]. A measurement is stamped at the end of what it measured, so a point at 12:00
    belongs to the hour before it, as it belongs to a window ending at 12:00."""
    return Trunc(F("at") - _TICK, "hour", tzinfo=UTC)


def _bucket_of(size: str):
    """The hour or day a point is plotted in: a raw point's own (as `_hour_of`), an hourly
    point's hour's."""
    moment = Case(
        When(resolution=SliPoint.Resolution.HOUR, then=F("at")),
        default=F("at") - _TICK,
        output_field=DateTimeField(),
    )
    return Trunc(moment, size, tzinfo=UTC)


def rolled_horizon(now: datetime | None = None) -> datetime:
    """Raw points at or before this instant may already be folded into hourly points."""
    return _floor_hour((now or timezone.now()) - rollup_after())


def _in(start: datetime, end: datetime, horizon: datetime | None = None) -> Q:
    """The points of the window (start, end].

    An hourly point counts when its whole hour (h, h + 1 h] lies in the window's hours: its hour
    ends after `start` and by `end`. So that rolling up never changes a figure, a window edge
    whose hour may already be rolled up (before `horizon`) is taken to its hour for raw points
    too; a recent edge is exact to the microsecond over raw points."""
    horizon = horizon or rolled_horizon()
    raw_start, raw_end = start, end
    if _floor_hour(start) < horizon:
        raw_start = _floor_hour(start)
    if _floor_hour(end) < horizon:
        raw_end = _floor_hour(end)
    raw = Q(resolution=SliPoint.Resolution.RAW, at__gt=raw_start, at__lte=raw_end)
    hour = Q(resolution=SliPoint.Resolution.HOUR, at__gt=start - HOUR, at__lte=end - HOUR)
    return raw | hour


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
    """How many of `edges` (ascending) lie strictly before a point, by the rule of `_in`: an
    hourly roll-up is placed at the end of its hour (its `at` plus an hour); a raw point is
    compared with the edges themselves, except an edge whose hour may already be rolled up
    (before `horizon`), which is taken to its hour, as the roll-ups of that hour will be.
    Compiled straight to SQL: a tree of ORM `Case` expressions over a hundred edges costs more
    to build than the query takes to run."""

    output_field = IntegerField()

    def __init__(self, edges: list[datetime], horizon: datetime):
        super().__init__()
        self.edges, self.horizon = edges, horizon
        self.at, self.resolution = F("at"), F("resolution")

    def get_source_expressions(self):
        return [self.at, self.resolution]

    def set_source_expressions(self, exprs):
        self.at, self.resolution = exprs

    def as_sql(self, compiler, connection):
        at_sql, at_params = compiler.compile(self.at)
        res_sql, res_params = compiler.compile(self.resolution)
        adapt = connection.ops.adapt_datetimefield_value
        params: list = [*res_params, SliPoint.Resolution.HOUR.value]
        # A roll-up's hour ends after an edge when it begins after the edge less an hour.
        hour = _count_before(at_sql, at_params, [adapt(t - HOUR) for t in self.edges], params)
        raw_edges = [_raw_edge(t, self.horizon) for t in self.edges]  # still ascending
        raw = _count_before(at_sql, at_params, [adapt(t) for t in raw_edges], params)
        return f"(CASE WHEN {res_sql} = %s THEN {hour} ELSE {raw} END)", params


def _raw_edge(edge: datetime, horizon: datetime) -> datetime:
    """Where a window edge falls for raw points (the rule of `_in`)."""
    hour = _floor_hour(edge)
    return hour if hour < horizon else edge


@dataclass
class WindowSums:
    """Good and total events of the points summed per gap between window edges.

    A point's position is how many edges lie before it (`_EdgesBefore`), so it is in the
    window (edges[a], edges[b]] exactly when `_in` puts it there: a < position <= b. Each
    position is summed once in SQL; any window over these edges is then a sum over a few
    positions, with no further query.
    """

    edges: list[datetime]
    gaps: dict[int, list] = field(default_factory=dict)

    def add(self, position: int, good: int, total: int, first: datetime) -> None:
        sums = self.gaps.setdefault(position, [0, 0, first])
        sums[0] += good
        sums[1] += total
        sums[2] = min(sums[2], first)

    def over(self, start: datetime, end: datetime) -> tuple[int, int, datetime | None]:
        """Good, total and the first point's time in the window (start, end]."""
        a, b = self.edges.index(start), self.edges.index(end)
        good = total = 0
        first = None
        for position, (g, t, f) in self.gaps.items():
            if a < position <= b:
                good += g
                total += t
                first = f if first is None or f < first else first
        return good, total, first


def _window_query(criterion: SuccessCriterion, spans: list[tuple[datetime, datetime]]):
    """The criterion's points in any of `spans`, each with its position among the edges."""
    edges = sorted({t for span in spans for t in span})
    horizon = rolled_horizon()
    rows = (
        SliPoint.objects.filter(_in(edges[0], edges[-1], horizon), criterion_id=criterion.pk)
        .order_by()
        .annotate(position=_EdgesBefore(edges, horizon))
    )
    return edges, rows


def window_sums(criterion: SuccessCriterion, spans: list[tuple[datetime, datetime]]) -> WindowSums:
    """Good/total over each (start, end] of `spans`, all in one query."""
    edges, rows = _window_query(criterion, spans)
    sums = WindowSums(edges)
    for r in rows.values("position").annotate(g=Sum("good"), t=Sum("total"), f=Min("at")):
        sums.add(r["position"], r["g"], r["t"], r["f"])
    return sums


def measured_every(criterion: SuccessCriterion) -> timedelta | None:
    """How often a criterion measured on a schedule (propagation lag) gets a point."""
    if criterion.metric_key != MetricKey.FRESHNESS:
        return None
    from planner.metrics import freshness as lag

    return timedelta(minutes=lag.every_minutes(criterion))


def _rule_spans(criterion: SuccessCriterion) -> list[tuple[BurnRule, timedelta, timedelta]]:
    """Each rule with its long and short windows. A window is never shorter than the criterion's
    measuring interval: one of 5 minutes over points 12 minutes apart would hold the latest
    measurement only now and then, and the page would read "quiet" beside the alert those
    rules opened when the point came in."""
    every = measured_every(criterion) or timedelta(0)
    spans = []
    for rule in BURN_RULES:
        long, short = rule.windows(window_of(criterion))
        spans.append((rule, max(long, every), max(short, every)))
    return spans


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
        for rule, long, short in _rule_spans(criterion):
            counts = [sums.over(end - w, end)[:2] for w in (long, short)]
            burns = [burn_rate(*c, objective) for c in counts]
            over = [over_threshold(*c, objective, rule.threshold) for c in counts]
            states.append(RuleState(rule, long, short, *burns, *over))
    good, total, first = sums.over(start, end)
    return Compliance(
        criterion.pk,
        start,
        end,
        end - start,
        objective,
        good,
        total,
        first,
        states,
        strict_of(criterion),
    )


def _spans(criterion: SuccessCriterion, start: datetime, end: datetime, rules: bool) -> list:
    spans = [(start, end)]
    if rules:
        for _rule, long, short in _rule_spans(criterion):
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


def compliances(
    spans: list[tuple[SuccessCriterion, datetime]], end: datetime
) -> dict[int, Compliance]:
    """`compliance(c, end, start, rules=False)` of many criteria in one query: each span is a
    criterion (at most once) and the start of its window; by criterion id."""
    if not spans:
        return {}
    # One condition per distinct window start (criteria mostly share their window length).
    by_start: dict[datetime, list[int]] = {}
    for criterion, start in spans:
        by_start.setdefault(start, []).append(criterion.pk)
    where = Q()
    for start, ids in by_start.items():
        where |= Q(criterion_id__in=ids) & _in(start, end)
    rows = {
        row["criterion_id"]: row
        for row in SliPoint.objects.filter(where)
        .values("criterion_id")
        .annotate(good=Sum("good"), total=Sum("total"), first=Min("at"))
        .order_by()
    }
    out = {}
    for criterion, start in spans:
        row = rows.get(criterion.pk, {})
        out[criterion.pk] = Compliance(
            criterion.pk,
            start,
            end,
            end - start,
            objective_of(criterion),
            int(row.get("good") or 0),
            int(row.get("total") or 0),
            row.get("first"),
            strict=strict_of(criterion),
        )
    return out


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
        rows.annotate(bucket=_bucket_of("hour"))
        .values("bucket", "position")
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
    names = ("bucket", "position", "g", "t", "f", "p50", "p95", "p99", "late")
    for at, position, good, total, first, p50, p95, p99, late in rows.values_list(*names):
        sums.add(position, good, total, first)
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
    cutoff = rolled_horizon(now)  # the hours that end by it are complete: fold them
    raw = SliPoint.objects.filter(resolution=SliPoint.Resolution.RAW, at__lte=cutoff)
    # order_by(): the model's default ordering would make DISTINCT one row per point.
    ids = raw.order_by().values_list("criterion_id", flat=True).distinct()
    if criterion_id is not None:
        ids = ids.filter(criterion_id=criterion_id)
    folded = 0
    for cid in list(ids):
        folded += _roll_up_one(cid, cutoff)
    return folded


def _roll_up_one(criterion_id: int, cutoff: datetime) -> int:
    with transaction.atomic():
        if not SuccessCriterion.objects.select_for_update().filter(pk=criterion_id).exists():
            return 0
        raw = SliPoint.objects.filter(
            criterion_id=criterion_id, resolution=SliPoint.Resolution.RAW, at__lte=cutoff
        )
        last_id = raw.aggregate(m=Max("pk"))["m"]
        if last_id is None:
            return 0
        # Fold only the rows that exist now (pk <= last_id): one arriving meanwhile waits.
        raw = raw.filter(pk__lte=last_id)
        hours = (
            raw.annotate(hour=_hour_of())
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
