"""Runbook benchmark: the PDF of a big project, in pages and seconds.

    .venv/bin/python benchmarks/runbook.py [--db-url URL] [--mappings 500] [--cases 60]
                                           [--runs 3] [--out runbook.pdf]

1. Uses a throwaway SQLite database in a temporary folder (migrated on the spot), or the
   PostgreSQL database given with --db-url (created when missing; its benchmark project is
   rebuilt each run).
2. Builds one project with every step filled: 500 field mappings over 5 connections (step 2),
   60 test cases over every stage (step 4), rollback triggers and steps, monitors, training,
   incidents, and a sign-off on each step.
3. Renders the runbook PDF through the same path as an export (`planner.runbook.service.run_export`:
   collect, render HTML, WeasyPrint layout, write, store the file) --runs times after one
   warm-up, and prints pages, wall and CPU seconds (best and median) and the split between the
   phases of one render. After each export it runs the full garbage collection that the export
   task runs once the file is saved (planner/runbook/tasks.py), untimed, and prints its CPU.

4. Lays out, in the same process and right after, an anchor: a plain 500-row, four-column
   table of short words with the runbook's stylesheet, so a loaded machine shows in both.

Exit status: 0 when the best run is under the 3 s target, 1 otherwise. (On a shared machine
the median also measures the other load; the CPU seconds show the work itself, and the load
average is printed with the figures.)
"""

import argparse
import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 3.0
NAME = "Bench runbook: big project"


def setup_django(db_url: str | None, var_dir: Path) -> None:
    env = {
        "AETHON_VAR_DIR": str(var_dir),
        "AETHON_MEDIA_ROOT": str(var_dir / "media"),
        "DJANGO_SETTINGS_MODULE": "aethon.settings",
        "AETHON_LOG_LEVEL": "WARNING",
    }
    if db_url:
        env["DATABASE_URL"] = db_url
    os.environ.update(env)
    if db_url:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from pages import ensure_database  # the page benchmark's helper

        ensure_database(db_url)
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit("manage.py migrate failed")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def build(n_mappings: int, n_cases: int):
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from planner.models import (
        Connection,
        DataElement,
        DeploymentPlan,
        FieldMapping,
        IncidentEntry,
        IntegrationProject,
        Membership,
        Monitor,
        Objective,
        PatternDecision,
        Role,
        RollbackStep,
        RollbackTrigger,
        SuccessCriterion,
        System,
        TestCase,
        TestPlan,
        TrainingPlan,
    )
    from planner.models.testing import REQUIRED_SCENARIOS, TestStage

    User = get_user_model()
    owner, _ = User.objects.get_or_create(username="bench_runbook", defaults={"first_name": "Bo"})
    approver, _ = User.objects.get_or_create(
        username="bench_approver", defaults={"first_name": "Alex", "last_name": "Approver"}
    )
    for old in IntegrationProject.objects.filter(name=NAME):
        # Sign-offs protect their project from deletion; benchmark data is the exception.
        from django.db import connection

        with connection.cursor() as cursor:
            for table in ("planner_signoffstale", "planner_signoff"):
                cursor.execute(f"DELETE FROM {table} WHERE project_id = %s", [old.pk])  # noqa: S608
        old.delete()
    project = IntegrationProject.objects.create(
        name=NAME, business_problem="CRM and billing disagree on customer status.", owner=owner
    )
    Membership.objects.create(project=project, user=owner, role=Role.OWNER)
    signer = Membership.objects.create(project=project, user=approver, role=Role.APPROVER)
    Objective.objects.create(
        project=project,
        business_objective="No inactive customer is invoiced.",
        stakeholders_consulted="Sales Ops\nBilling lead\nFinance",
    )
    systems = [
        System.objects.create(project=project, name=n, kind=k)
        for n, k in (("CRM", "crm"), ("Billing", "billing"), ("Support", "support"))
    ]
    pairs = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2)]
    connections = [
        Connection.objects.create(
            project=project,
            source=systems[a],
            target=systems[b],
            direction="bidirectional" if i == 0 else "one_way",
        )
        for i, (a, b) in enumerate(pairs)
    ]
    FieldMapping.objects.bulk_create(
        FieldMapping(
            project=project,
            connection=connections[i % len(connections)],
            position=i,
            source_field=f"source_field_{i:03d}",
            target_field=f"target_field_{i:03d}",
            source_type="string",
            target_type="string",
            max_length=80,
            required=i % 3 == 0,
            null_rule="default" if i % 4 == 0 else "reject",
            null_default="n/a" if i % 4 == 0 else "",
            rule="trim | lower | map(active=1, inactive=0) | max_length(80)",
            notes="Legacy values: 'A', 'I' before 2019." if i % 5 == 0 else "",
        )
        for i in range(n_mappings)
    )
    criteria = [
        SuccessCriterion.objects.create(
            project=project,
            metric=f"sync latency {i}",
            target=Decimal(5),
            unit="minutes",
            attainment_pct=Decimal("99.9"),
            window_value=30,
            window_unit="days",
        )
        for i in range(3)
    ]
    DataElement.objects.create(project=project, name="customer status", source_of_truth=systems[0])
    PatternDecision.objects.create(
        project=project, pattern="hub_and_spoke", rationale="Three systems and growing."
    )
    stages = [s for s in TestStage]
    cases = []
    for i in range(n_cases):
        stage = stages[i % len(stages)]
        scenario = (
            REQUIRED_SCENARIOS[i % len(REQUIRED_SCENARIOS)] if stage == TestStage.ERRORS else ""
        )
        cases.append(
            TestCase(
                project=project,
                stage=stage,
                scenario=scenario,
                position=i,
                description=f"Case {i}: {stage.label.lower()} with realistic records",
                data_set="200 customers sampled from staging, incl. 10 inactive",
                expected_result="All records arrive; inactive ones have status 0",
                pass_criterion="0 rejected records; counts match",
                owner="QA team",
                status="passed",
                evidence_note=f"Run log QA-{1000 + i}",
            )
        )
    TestCase.objects.bulk_create(cases)
    TestPlan.objects.create(project=project, parallel_run="Two weeks, compared daily.")
    DeploymentPlan.objects.create(
        project=project,
        pipeline="build\nunit tests\ndeploy to staging\nsmoke tests\ndeploy to production",
        env_dev="dev.example.com",
        env_staging="staging.example.com",
        env_prod="prod.example.com",
        rollout="feature_flag",
        rollout_plan="Flag on for 5% of accounts, then 50%, then all.",
        restore="change_log",
        rehearsed_on="2026-11-01",
        rehearsal_result="succeeded",
    )
    for i in range(3):
        RollbackTrigger.objects.create(
            project=project, metric=f"error rate {i}", threshold=5, unit="%", window_value=15
        )
        RollbackStep.objects.create(
            project=project,
            position=i + 1,
            action=f"Rollback action {i}",
            owner="Ops",
            expected_minutes=10,
        )
    for kind in ("connectivity", "throughput", "error_rate", "data_quality", "reconciliation"):
        Monitor.objects.create(
            project=project,
            kind=kind,
            name=kind.replace("_", " "),
            threshold=1,
            unit="%",
            window_value=5,
            severity="critical",
            alert_route="PagerDuty: integrations",
            dashboard_url="https://grafana.example.com/d/sync",
        )
    for c in criteria:
        Monitor.objects.create(
            project=project,
            kind="criterion",
            name=c.metric,
            threshold=5,
            window_value=30,
            alert_route="#sync-alerts",
            criterion=c,
        )
    TrainingPlan.objects.create(
        project=project,
        audiences="Sales ops\nBilling team\nSupport",
        guide="https://wiki.example.com/sync",
        feedback_channel="#crm-billing-sync",
        go_live_on="2027-01-15",
    )
    for i in range(8):
        IncidentEntry.objects.create(
            project=project,
            symptom=f"Symptom {i}",
            to_check="Queue depth",
            fix="Restart",
            escalation="Integration on-call",
        )
    from planner.checklist.signoff import SignOffRefused, sign, step_hashes

    hashes = step_hashes(project)
    for number in range(1, 8):
        try:
            sign(project, number, signer, "approve", "", hashes[number])
        except SignOffRefused:  # a step whose rules fail can only get "changes requested"
            sign(project, number, signer, "changes", "Benchmark sign-off", hashes[number])
    return project, owner


def anchor_seconds(rows: int = 500) -> tuple[float, float]:
    """(wall, cpu) seconds to lay out and write a plain table of `rows` short rows."""
    from django.template.loader import render_to_string
    from weasyprint import HTML

    from planner.pdf import no_fetching

    css = render_to_string("runbook/runbook.css")
    body = "".join(
        f"<tr><td>source_{i}</td><td>target_{i}</td><td>trim</td><td>exact</td></tr>"
        for i in range(rows)
    )
    html = f"<html><head><style>{css}</style></head><body><table>{body}</table></body></html>"
    t0, c0 = time.perf_counter(), time.process_time()
    HTML(string=html, url_fetcher=no_fetching()).write_pdf()
    return time.perf_counter() - t0, time.process_time() - c0


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", help="PostgreSQL URL (default: a throwaway SQLite file)")
    parser.add_argument("--mappings", type=int, default=500)
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the PDF here")
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="aethon-bench-runbook-"))
    try:
        setup_django(args.db_url, var_dir)
        started = time.perf_counter()
        project, owner = build(args.mappings, args.cases)
        print(
            f"Built '{project.name}': {args.mappings} mapping rows, {args.cases} test cases "
            f"({time.perf_counter() - started:.1f} s)"
        )
        import planner.runbook.service as rb
        from planner.models import RunbookExport

        phases: dict[str, float] = {}
        clock = {"t": 0.0, "phase": ""}

        def progress(pct: int, message: str) -> None:
            now = time.perf_counter()
            if clock["phase"]:
                phases[clock["phase"]] = phases.get(clock["phase"], 0) + now - clock["t"]
            clock.update(t=now, phase=re.sub(r"\d+ ", "", message))

        # What a Celery pool process does when it starts (worker_process_init), then the
        # first render, which should cost no more than the later ones.
        warm = rb.warm_up()
        t0 = time.perf_counter()
        rb.render_pdf(project)
        first = time.perf_counter() - t0
        seconds, cpu, pages, collect = [], [], 0, []
        load_before = load()
        for _ in range(args.runs):
            c0 = time.process_time()
            gc.collect()  # what the export task does after each export, off the user's wait
            collect.append(time.process_time() - c0)
            export = rb.start_export(project, owner)
            t0, c0 = time.perf_counter(), time.process_time()
            rb.run_export(export.pk)
            seconds.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            export = RunbookExport.objects.get(pk=export.pk)
            if export.status != "done":
                raise SystemExit(f"export failed: {export.error}")
            pages = export.pages
        gc.collect()
        t0 = time.perf_counter()
        clock.update(t=t0, phase="")
        pdf, _, _ = rb.render_pdf(project, progress)
        progress(100, "end")
        size = len(pdf)
        if args.out:
            args.out.write_bytes(pdf)
        median, best = statistics.median(seconds), min(seconds)
        anchor_wall, anchor_cpu = anchor_seconds()
        print(f"\nRunbook PDF: {pages} pages, {size / 1024:.0f} KiB")
        print(f"Export (collect + render + lay out + write + store), {args.runs} runs:")
        print(f"  wall: min {best:.2f} s   median {median:.2f} s   max {max(seconds):.2f} s")
        print(f"  cpu:  min {min(cpu):.2f} s   median {statistics.median(cpu):.2f} s")
        print(f"  {pages / best:.1f} pages/s   target < {TARGET_SECONDS:.0f} s")
        print(f"  {load_before} before the runs, {load()} after")
        print(
            f"Anchor, a plain 500-row table laid out and written: wall {anchor_wall:.2f} s, "
            f"cpu {anchor_cpu:.2f} s"
        )
        print(
            f"The task's garbage collection after an export (untimed above): cpu "
            f"{statistics.median(collect):.2f} s"
        )
        print(f"Worker start-up warm-up (import, fonts, CSS): {warm:.2f} s")
        print(f"First render after it: {first:.2f} s (later renders above)")
        print("Phases of one render:")
        for name, value in phases.items():
            print(f"  {name:<34} {value:6.2f} s")
        if args.out:
            print(f"PDF written to {args.out}")
        # The best run is the cost of the work itself; slower runs measure the machine's load.
        ok = best < TARGET_SECONDS
        print("OK" if ok else f"FAIL: the best run, {best:.2f} s, is over {TARGET_SECONDS} s")
        return 0 if ok else 1
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
