"""Team-work benchmark: the bell, My work and the dashboard's overdue counts at scale.

    .venv/bin/python benchmarks/team_work.py [--db-url URL] [--projects 30] [--runs 20]

1. Creates the PostgreSQL database if it is missing and migrates it.
2. Builds (once; again with --fresh) a user `bench_team` who belongs to --projects projects,
   each with 7 assigned steps (half overdue) and 400 notifications (a tenth unread), plus a
   project they left with notifications of its own that must stay hidden.
3. Counts the queries of the bell's unread count, the My work list and the dashboard's overdue
   counts, for 3 projects and for all of them: they must not grow with the number of projects
   (the overdue counts are one subquery; the bell is one COUNT).
4. Times each --runs times and prints the median and the slowest, in milliseconds.

Exit status: 0 when every check passes, 1 otherwise.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/aethon_bench"
USERNAME = "bench_team"
PER_PROJECT_NOTIFICATIONS = 400


def setup(db_url: str) -> None:
    from pages import ensure_database, migrate

    ensure_database(db_url)
    env = {**os.environ, "DATABASE_URL": db_url}
    migrate(env)
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aethon.settings")
    import django

    django.setup()


def build(projects: int, fresh: bool):
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from planner.models import Assignment, IntegrationProject, Membership, Notification

    User = get_user_model()
    user = User.objects.filter(username=USERNAME).first()
    owned = IntegrationProject.objects.filter(name__startswith="Bench team ")
    if user and not fresh and owned.count() == projects + 1:
        return user
    with transaction.atomic():
        owned.delete()
        user = user or User.objects.create_user(USERNAME, f"{USERNAME}@example.com")
        today = timezone.localdate()
        for i in range(projects + 1):
            p = IntegrationProject.objects.create(
                name=f"Bench team {i:03d}", business_problem="bench", owner=user
            )
            left = i == projects  # the last one: notifications of a project the user left
            if not left:
                Membership.objects.create(project=p, user=user, role="owner")
                Assignment.objects.bulk_create(
                    Assignment(
                        project=p,
                        kind="step",
                        step=n,
                        assignee=user,
                        due_date=today + timedelta(days=n - 4),
                    )
                    for n in range(1, 8)
                )
            Notification.objects.bulk_create(
                Notification(
                    recipient=user,
                    project=p,
                    kind="mention",
                    text=f"note {k}",
                    read_at=None if k % 10 == 0 else timezone.now(),
                )
                for k in range(PER_PROJECT_NOTIFICATIONS)
            )
    print(f"Built {projects} projects (+1 left) for {USERNAME}.")
    return user


def measure(label: str, fn, runs: int) -> tuple[int, float, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fn()
    with CaptureQueriesContext(connection) as queries:
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    median, worst = statistics.median(times), max(times)
    print(f"  {label:<36} {len(queries):>3} queries  median {median:7.1f} ms  max {worst:7.1f} ms")
    return len(queries), median, worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db-url", default=DEFAULT_DB_URL)
    parser.add_argument("--projects", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    setup(args.db_url)

    from django.utils import timezone

    from planner.models import Membership
    from planner.notify.service import unread_count
    from planner.teamwork.assignments import open_work, overdue_count

    user = build(args.projects, args.fresh)
    today = timezone.localdate()

    def overdue(limit):
        ids = list(
            Membership.objects.filter(user=user)
            .order_by("project__name")
            .values_list("project_id", flat=True)[:limit]
        )
        return list(
            Membership.objects.filter(user=user, project_id__in=ids)
            .annotate(n=overdue_count(today))
            .values_list("project_id", "n")
        )

    ok = True
    expected_unread = args.projects * PER_PROJECT_NOTIFICATIONS // 10
    got = unread_count(user)
    print(f"Unread: {got} (expected {expected_unread}; the left project's are hidden)")
    ok &= got == expected_unread
    work = open_work(user, today)
    print(f"My work: {len(work)} items, first overdue: {work[0].overdue if work else None}")
    ok &= len(work) == args.projects * 7 and work[0].overdue
    print("Figures:")
    q_bell, *_ = measure("bell (unread count)", lambda: unread_count(user), args.runs)
    q_work, *_ = measure("My work", lambda: open_work(user, today), args.runs)
    q_few, *_ = measure("overdue counts, 3 projects", lambda: overdue(3), args.runs)
    q_all, *_ = measure(
        f"overdue counts, {args.projects} projects", lambda: overdue(None), args.runs
    )
    counts = dict(overdue(None))
    ok &= set(counts.values()) == {3}  # steps due 3, 2 and 1 days ago
    ok &= q_bell == 1 and q_work == 1 and q_few == q_all
    print("OK" if ok else "FAILED: see the figures above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
