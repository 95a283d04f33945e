"""Mapping import benchmark: a 10,000-row spreadsheet through the page and the API.

    .venv/bin/python benchmarks/mapping_import.py [--db-url URL] [--rows 9999]

1. Creates the PostgreSQL database if it is missing and migrates it.
2. Builds a project (owner `bench_import`) with the connections Sales CRM → Billing and
   Billing → Data Warehouse, removing the previous run's project.
3. Writes a CSV of a header and --rows rows (10,000 mapping rows by default), kept the
   way people keep one: Source System / Target System
   columns (half the rows for each connection, names in other cases and spacing), types like
   varchar(80) and bigint, frequencies like "every 5 minutes" and "nightly", arrows for the
   direction, "default 0" null rules, notes with leading spaces and line breaks, and one value
   the vocabulary does not know ("every fortnight"), matched in the preview as a user would.
4. Times, with django.test.Client against the real database:
     preview  the upload POST (read, column matching, every row through the editor's form);
     confirm  the confirm POST with the value matched (the same checks, then the save);
     api      the same file through POST /api/.../mapping in one call.
   Each must import every row; preview must take under 2 s and confirm under 5 s.

Exit status: 0 when every check passes, 1 otherwise.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/aethon_bench"
PREVIEW_LIMIT = 2.0
CONFIRM_LIMIT = 5.0

FREQUENCIES = ["every 5 minutes", "nightly", "real-time", "hourly", "every fortnight"]
TYPES = [("varchar(80)", "trim | max_length(80)"), ("bigint", "identity"), ("text", "trim")]


def sheet(rows: int) -> bytes:
    lines = [
        "Source System,Target System,Source field,Source type,Target field,Target type,"
        "Required,Null rule,Transformation,Direction,Sync frequency,Notes"
    ]
    for i in range(rows):
        pair = "sales crm,BILLING" if i % 2 else "Billing,Data  Warehouse"
        target_type, rule = TYPES[i % len(TYPES)]
        null = "default 0" if target_type == "bigint" else "skip"
        note = f'"  row {i}: kept\nas typed"' if i % 10 == 0 else ""
        lines.append(
            f"{pair},Field_{i},string,field_{i},{target_type},{'yes' if i % 3 else 'no'},"
            f"{null},{rule},→,{FREQUENCIES[i % len(FREQUENCIES)]},{note}"
        )
    return ("\r\n".join(lines) + "\r\n").encode()


def setup(db_url: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pages import ensure_database, migrate

    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aethon.settings")
    ensure_database(db_url)
    migrate({**os.environ})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    # For the test client: response.context, and 'testserver' as an allowed host.
    setup_test_environment()


def build():
    from django.contrib.auth import get_user_model

    from planner.models import Connection, IntegrationProject, Membership, Role, System

    user, _ = get_user_model().objects.get_or_create(username="bench_import")
    IntegrationProject.objects.filter(owner=user).delete()
    project = IntegrationProject.objects.create(name="Bench import", owner=user)
    Membership.objects.get_or_create(project=project, user=user, defaults={"role": Role.OWNER})
    crm, billing, warehouse = (
        System.objects.create(project=project, name=name)
        for name in ("Sales CRM", "Billing", "Data Warehouse")
    )
    first = Connection.objects.create(project=project, source=crm, target=billing)
    second = Connection.objects.create(project=project, source=billing, target=warehouse)
    return user, project, first, second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db-url", default=DEFAULT_DB_URL)
    # 10,000 mappings below the header, as a PM's 10,000-row sheet holds them.
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    setup(args.db_url)

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client
    from django.urls import reverse

    from planner.api.tokens import create_token
    from planner.models import FieldMapping, ValueMeaning

    data = sheet(args.rows)
    print(f"Sheet: {args.rows:,} rows, {len(data) / 1e6:.2f} MB.")
    user, project, first, second = build()
    client = Client()
    client.force_login(user)
    url = reverse("planner:mapping_import", args=[project.pk, first.pk])

    start = time.perf_counter()
    response = client.post(url, {"file": SimpleUploadedFile("big.csv", data)})
    preview_s = time.perf_counter() - start
    ctx = response.context
    plan = ctx["plan"]
    unknown = [(u.field, u.key) for u in plan.unknown]
    failed = []
    if response.status_code != 200 or plan.row_count != args.rows or ctx["problems"]:
        failed.append(f"preview: {response.status_code}, {ctx['problems'][:3]}")
    if unknown != [("frequency", "every fortnight")]:
        failed.append(f"preview: unknown values {unknown}")

    form = {"step": "confirm", "encoded": ctx["encoded"], "filename": "big.csv", "mode": "append"}
    form |= {f"col_{i}": (f or "") for i, f in ctx["columns"].items()}
    form |= {"value_field": "frequency", "value_key": "every fortnight", "value_meaning": "weekly"}
    start = time.perf_counter()
    response = client.post(url, form)
    confirm_s = time.perf_counter() - start
    saved = FieldMapping.objects.filter(project=project).count()
    if response.status_code != 302 or saved != args.rows:
        failed.append(f"confirm: {response.status_code}, {saved} rows saved")

    build()  # a clean project again; the meaning chosen above goes with it
    user, project, first, second = build()
    _, token = create_token(user, "bench")
    values = '{"frequency": {"every fortnight": "weekly"}}'
    start = time.perf_counter()
    response = client.post(
        f"/api/projects/{project.pk}/connections/{first.pk}/mapping",
        {"file": SimpleUploadedFile("big.csv", data), "values": values},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    api_s = time.perf_counter() - start
    if response.status_code != 200 or response.json()["imported"] != args.rows:
        failed.append(f"api: {response.status_code} {response.content[:300]!r}")
    if not ValueMeaning.objects.filter(project=project).exists():
        failed.append("api: the meaning was not remembered")

    print(f"preview  {preview_s:6.2f} s   (limit {PREVIEW_LIMIT:.0f} s)")
    print(f"confirm  {confirm_s:6.2f} s   (limit {CONFIRM_LIMIT:.0f} s)")
    print(f"api      {api_s:6.2f} s   (checks and save in one call)")
    if args.rows >= 9_999:
        if preview_s > PREVIEW_LIMIT:
            failed.append(f"preview took {preview_s:.2f} s")
        if confirm_s > CONFIRM_LIMIT:
            failed.append(f"confirm took {confirm_s:.2f} s")
    for problem in failed:
        print("FAIL", problem)
    print("OK" if not failed else "FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
