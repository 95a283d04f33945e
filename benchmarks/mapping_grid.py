"""Mapping grid benchmark: the step-2 editor of a 500-row mapping, in milliseconds and queries.

    .venv/bin/python benchmarks/mapping_grid.py [--db-url URL] [--rows 500] [--runs 10]

1. Uses a throwaway SQLite database in a temporary folder (migrated on the spot), or the
   PostgreSQL database given with --db-url (created when missing; the benchmark project is
   rebuilt each run).
2. Builds one project with two connections: one with 5 mapping rows, one with --rows rows of
   every kind (types, lengths, null rules, rules of several transforms, notes of a few words).
3. Requests both editors through django.test.Client (the whole view: permissions, readiness,
   the status box, the grid), after one warm-up each, and prints the queries of each and the
   best and median of --runs renders of the big one.

Exit status: 0 when the big editor needs no more queries than the small one and its best
render is under 300 ms, 1 otherwise.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300.0
NAME = "Bench mapping grid"
sys.path.insert(0, str(ROOT / "benchmarks"))

from runbook import setup_django  # noqa: E402 - the same throwaway-or-given database setup


def build(rows: int):
    from django.contrib.auth import get_user_model

    from planner.models import Connection, FieldMapping, IntegrationProject, Membership, System

    owner, _ = get_user_model().objects.get_or_create(username="bench_grid")
    IntegrationProject.objects.filter(name=NAME).delete()
    project = IntegrationProject.objects.create(name=NAME, business_problem="-", owner=owner)
    Membership.objects.create(project=project, user=owner, role="owner")
    crm, billing = (
        System.objects.create(project=project, name=n, kind=k)
        for n, k in (("CRM", "crm"), ("Billing", "billing"))
    )
    small = Connection.objects.create(project=project, source=billing, target=crm)
    big = Connection.objects.create(project=project, source=crm, target=billing)
    rules = ("trim", "trim | lower | max_length(80)", "map(active=1, inactive=0)", "identity")
    for connection, count in ((small, 5), (big, rows)):
        FieldMapping.objects.bulk_create(
            FieldMapping(
                project=project,
                connection=connection,
                position=i,
                source_field=f"Customer_Field_{i:04d}__c",
                target_field=f"customer_field_{i:04d}",
                source_type="string",
                target_type="integer" if i % 4 == 2 else "string",
                max_length=80 if i % 4 == 1 else None,
                required=i % 3 == 0,
                null_rule=("reject", "skip", "default")[i % 3],
                null_default="n/a" if i % 3 == 2 else "",
                rule=rules[i % 4],
                frequency=("real_time", "daily")[i % 2],
                notes=f"Checked with the billing team on row {i}; see the data dictionary.",
            )
            for i in range(count)
        )
    return owner, project, small, big


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", default=None)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aethon-grid-bench-") as tmp:
        setup_django(args.db_url, Path(tmp))
        from django.db import connection as db
        from django.test import Client
        from django.test.utils import CaptureQueriesContext
        from django.urls import reverse

        owner, project, small, big = build(args.rows)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(owner)

        def url(c):
            return reverse("planner:mapping_editor", args=[project.pk, c.pk])

        queries = {}
        for label, c in (("5 rows", small), (f"{args.rows} rows", big)):
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
        shown = response.content.decode().count('class="grid-row mapping-row')
    print(f"database: {os.environ.get('DATABASE_URL') or 'SQLite (throwaway)'}")
    for label, count in queries.items():
        print(f"queries, editor of {label:>9}: {count}")
    print(
        f"render of {shown} rows: best {min(times):.0f} ms, "
        f"median {statistics.median(times):.0f} ms (target {TARGET_MS:.0f} ms)"
    )
    counts = list(queries.values())
    ok = counts[1] <= counts[0] and min(times) < TARGET_MS and shown == args.rows
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
