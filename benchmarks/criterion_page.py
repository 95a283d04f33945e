"""Criterion page benchmark: a service-level page over 30 days of one-minute points plus a year
of hourly roll-ups, in milliseconds and queries.

    .venv/bin/python benchmarks/criterion_page.py [--db-url URL] [--runs 10]

1. Uses the PostgreSQL database given with --db-url (default aethon_bench on 127.0.0.1,
   created when missing; the benchmark project is rebuilt each run). SQLite truncates times
   to the hour in a Python function per row, so there the page is several times slower.
2. Builds one project with two freshness criteria: a small one with one day of one-minute
   points, and a big one with 43,200 one-minute points (30 days, raw) and 8,760 hourly
   roll-ups before them (a year).
3. Requests both criterion pages through django.test.Client (the whole view: permissions,
   readiness, compliance, burn rates, four SVG plots and their tables), after one warm-up
   each, and prints the queries of each and the best and median of --runs renders of the big
   one, with the load average.

Exit status: 0 when the big page needs no more queries than the small one and its best render
is under 100 ms, 1 otherwise.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 100.0
NAME = "Bench criterion page"
sys.path.insert(0, str(ROOT / "benchmarks"))

from runbook import setup_django  # noqa: E402 - the same throwaway-or-given database setup


def build():
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from planner.models import IntegrationProject, Membership, SliPoint, SuccessCriterion

    owner, _ = get_user_model().objects.get_or_create(username="bench_criterion")
    IntegrationProject.objects.filter(name=NAME).delete()
    project = IntegrationProject.objects.create(name=NAME, business_problem="-", owner=owner)
    Membership.objects.create(project=project, user=owner, role="owner")

    def criterion(metric):
        return SuccessCriterion.objects.create(
            project=project, metric=metric, metric_key="freshness_lag", target=5,
            unit="minutes", attainment_pct=99.9, window_value=30, window_unit="days",
        )  # fmt: skip

    small, big = criterion("one day"), criterion("a year")
    now = timezone.now().replace(second=0, microsecond=0)

    def raw(c, minutes):
        return (
            SliPoint(
                criterion=c, at=now - timedelta(minutes=i), good=999 if i % 97 else 900,
                total=1000, lag_p50=20.0, lag_p95=90.0 + i % 60, lag_p99=200.0, lag_max=400.0,
                late_now=i % 5,
            )
            for i in range(minutes)
        )  # fmt: skip

    SliPoint.objects.bulk_create(raw(small, 1440), batch_size=5000)
    SliPoint.objects.bulk_create(raw(big, 30 * 1440), batch_size=5000)
    first_hour = (now - timedelta(days=30)).replace(minute=0)
    SliPoint.objects.bulk_create(
        (
            SliPoint(
                criterion=big, resolution="hour", at=first_hour - timedelta(hours=h + 1),
                good=59_950, total=60_000, lag_p50=20.0, lag_p95=120.0, lag_p99=250.0,
                lag_max=500.0, late_now=3, points=60,
            )
            for h in range(365 * 24)
        ),
        batch_size=5000,
    )  # fmt: skip
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE planner_slipoint")  # what autovacuum does after a load
    return owner, project, small, big


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", default="postgres://postgres@127.0.0.1:5432/aethon_bench")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aethon-criterion-bench-") as tmp:
        setup_django(args.db_url, Path(tmp))
        from django.db import connection as db
        from django.test import Client
        from django.test.utils import CaptureQueriesContext
        from django.urls import reverse

        from planner.models import SliPoint

        owner, project, small, big = build()
        points = SliPoint.objects.filter(criterion=big).count()
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(owner)

        def url(c):
            return reverse("planner:criterion_service_level", args=[project.pk, c.pk])

        queries = {}
        for label, c in (("1 day", small), ("30 days + 1 year", big)):
            client.get(url(c))
            with CaptureQueriesContext(db) as captured:
                response = client.get(url(c))
            assert response.status_code == 200, response.status_code
            queries[label] = len(captured)
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get(url(big))
            times.append((time.perf_counter() - started) * 1000)
        plots = response.content.decode().count('class="slo-plot"')
    print(f"database: {os.environ.get('DATABASE_URL') or 'SQLite (throwaway)'}")
    print(f"points of the big criterion: {points:,} (43,200 raw + 8,760 hourly)")
    for label, count in queries.items():
        print(f"queries, page of {label:>16}: {count}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"render with {plots} plots: best {min(times):.0f} ms, "
        f"median {statistics.median(times):.0f} ms (target {TARGET_MS:.0f} ms), "
        f"load average {load}"
    )
    counts = list(queries.values())
    ok = counts[1] <= counts[0] and min(times) < TARGET_MS and plots == 4
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
