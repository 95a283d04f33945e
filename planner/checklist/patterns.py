"""Step 3: integration pattern trade-offs, computed from the system inventory."""

from collections import Counter
from dataclasses import dataclass

from planner.models import Connection, PatternDecision, System

Pattern = PatternDecision.Pattern


@dataclass(frozen=True)
class TradeOff:
    pattern: str
    label: str
    pros: tuple[str, ...]
    cons: tuple[str, ...]
    best_for: str


TRADE_OFFS: tuple[TradeOff, ...] = (
    TradeOff(
        Pattern.POINT_TO_POINT,
        Pattern.POINT_TO_POINT.label,
        ("Quickest to build for one pair", "No extra platform to buy or run", "Lowest latency"),
        (
            "Connections grow as n(n-1)/2",
            "Mapping and error handling repeated per pair",
            "Hard to monitor centrally",
        ),
        "Two or three systems with a stable, simple exchange.",
    ),
    TradeOff(
        Pattern.HUB_AND_SPOKE,
        Pattern.HUB_AND_SPOKE.label,
        (
            "One connection per system (n)",
            "Central mapping, retries, queueing and monitoring",
            "Adding a system adds one connection",
        ),
        ("Platform licence and skills", "The hub is a single point of failure to make resilient"),
        "Four or more systems, or a stack expected to grow.",
    ),
    TradeOff(
        Pattern.API_GATEWAY,
        Pattern.API_GATEWAY.label,
        (
            "One front door for synchronous APIs",
            "Central auth, rate limits and versioning",
            "Consumers decoupled from providers' changes",
        ),
        ("Does not transform or queue data by itself", "Another layer on the request path"),
        "Many consumers calling systems' APIs on request.",
    ),
)


@dataclass(frozen=True)
class PatternAnalysis:
    systems: int
    point_to_point_connections: int
    hub_connections: int
    planned_connections: int
    recommendation: str | None
    reasons: tuple[str, ...]

    @property
    def recommendation_label(self) -> str:
        return Pattern(self.recommendation).label if self.recommendation else ""


def analyse(systems: list[System], connections: list[Connection]) -> PatternAnalysis:
    n = len(systems)
    mesh, hub, planned = n * (n - 1) // 2, n, len(connections)
    if n < 2:
        return PatternAnalysis(
            n, mesh, hub, planned, None, ("Add at least two systems to the inventory.",)
        )

    reasons: list[str] = [
        f"{n} systems: a full point-to-point mesh needs {mesh} connection"
        f"{'s' if mesh != 1 else ''}, hub-and-spoke needs {hub}.",
    ]
    on_request = [c for c in connections if c.trigger == Connection.Trigger.REQUEST]
    providers = Counter(c.target_id for c in on_request)
    busiest_provider = max(providers.values(), default=0)
    spiky = [
        c
        for c in connections
        if c.volume_per_day and c.peak_per_day and c.peak_per_day >= 5 * c.volume_per_day
    ]

    if on_request and len(on_request) * 2 >= planned and busiest_provider >= 2:
        choice = Pattern.API_GATEWAY
        reasons.append(
            f"{len(on_request)} of {planned} connections are synchronous API calls, and one "
            f"system serves {busiest_provider} consumers: a gateway centralises auth, rate "
            "limits and versioning."
        )
    elif n <= 3 and planned <= 3:
        choice = Pattern.POINT_TO_POINT
        reasons.append(
            f"With {n} systems point-to-point needs no more connections than a hub "
            f"({mesh} vs {hub}); a hub would add cost without reducing the count."
        )
    else:
        choice = Pattern.HUB_AND_SPOKE
        reasons.append(
            f"The next system would add {n} point-to-point connections but only 1 through a hub."
        )
        if planned > hub:
            reasons.append(
                f"{planned} connections are already planned, more than the {hub} a hub needs."
            )
    if spiky:
        names = ", ".join(str(c) for c in spiky[:3])
        reasons.append(
            f"Peak volume is at least 5x the typical day on {names}: plan queueing and retries "
            "(a hub or middleware provides them)."
        )
    bidirectional = sum(c.direction == Connection.Direction.BIDIRECTIONAL for c in connections)
    if bidirectional:
        reasons.append(
            f"{bidirectional} bidirectional connection{'s' if bidirectional > 1 else ''}: "
            "each needs a conflict rule and a source of truth per field."
        )
    return PatternAnalysis(n, mesh, hub, planned, choice, tuple(reasons))
