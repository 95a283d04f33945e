"""Page benchmark: queries per page must not grow with rows, and latency under load.

    .venv/bin/python benchmarks/pages.py [--db-url URL] [--clients 20] [--requests 400]

1. Creates the PostgreSQL database if it is missing and migrates it.
2. Builds two projects owned by the user `bench_pages` (rebuilt only when their row counts
   are not the expected ones, or with --fresh):
     big:   50 systems, 60 connections, 100 success criteria, 40 data elements, an objective
            and a pattern decision;
     small: 5 systems, 4 connections, 10 success criteria, 3 data elements, an objective and a
            pattern decision (a few rows of every kind, so both projects take the same code
            paths and any difference in queries comes from the number of rows).
3. Counts the SQL queries of the step-1, step-3 and system inventory pages for both projects
   (django.test.Client + CaptureQueriesContext, after one warm-up request) and fails if the
   big project needs more queries than the small one. The repeated statements are printed, to
   point at the N+1.
4. Starts gunicorn (2 sync workers, DEBUG off), signs in once through the login form, and hits
   the step-1 and step-3 pages of the big project from --clients threads for --requests
   requests per page; prints median / p95 latency and requests per second. Every response must
   be a 200 that names the project. gunicorn is stopped whatever happens.

Exit status: 0 when every check passes, 1 otherwise.
"""

import argparse
import html
import http.client
import math
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/aethon_bench"

USERNAME = "bench_pages"
PASSWORD = "bench-pages-password-7f3a"  # noqa: S105 - a throwaway user in a benchmark database
BIG = {
    "name": "Bench pages: big project",
    "systems": 50,
    "connections": 60,
    "criteria": 100,
    "elements": 40,
}
SMALL = {
    "name": "Bench pages: small project",
    "systems": 5,
    "connections": 4,
    "criteria": 10,
    "elements": 3,
}
PAGES = (
    ("step 1", "planner:step", {"number": 1}),
    ("step 3", "planner:step", {"number": 3}),
    ("inventory", "planner:inventory", {}),
)
LOAD_PAGES = PAGES[:2]  # the pages hit through gunicorn


# --------------------------------------------------------------------------------------------
# Database


def ensure_database(db_url: str) -> None:
    """CREATE DATABASE when the one named in the URL does not exist yet."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    cfg = dj_database_url.parse(db_url)
    params = {
        "dbname": "postgres",
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
    }
    with psycopg.connect(
        **{k: v for k, v in params.items() if v}, autocommit=True, connect_timeout=10
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))
            print(f"Created database {cfg['NAME']}.")


def migrate(env: dict) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"manage.py migrate failed (exit {result.returncode}).")
    applied = result.stdout.count(" OK")
    print(f"Migrated ({applied} migration(s) applied)." if applied else "Schema up to date.")


# --------------------------------------------------------------------------------------------
# Data


def _counts(project) -> dict:
    return {
        "systems": project.systems.count(),
        "connections": project.connections.count(),
        "criteria": project.criteria.count(),
        "elements": project.data_elements.count(),
        "objective": int(hasattr(project, "objective")),
        "decision": int(hasattr(project, "pattern_decision")),
    }


def _expected(spec: dict) -> dict:
    keys = ("systems", "connections", "criteria", "elements")
    return {**{k: spec[k] for k in keys}, "objective": 1, "decision": 1}


def _build(user, spec: dict):
    from planner.models import (
        Connection,
        DataElement,
        IntegrationProject,
        Membership,
        Objective,
        PatternDecision,
        Role,
        SuccessCriterion,
        System,
    )

    project = IntegrationProject.objects.create(
        name=spec["name"],
        business_problem="Benchmark data: statuses disagree between systems.",
        owner=user,
    )
    Membership.objects.create(project=project, user=user, role=Role.OWNER)
    kinds = [k for k, _ in System.Kind.choices]
    systems = System.objects.bulk_create(
        System(
            project=project,
            name=f"System {i:03d}",
            kind=kinds[i % len(kinds)],
            owner=f"Team {i % 7}",
            notes="" if i % 3 else "Legacy, nightly export only.",
        )
        for i in range(spec["systems"])
    )
    n = len(systems)
    pairs: list[tuple[int, int]] = []
    for step in range(1, n):
        for i in range(n):
            if len(pairs) == spec["connections"]:
                break
            pairs.append((i, (i + step) % n))
        if len(pairs) == spec["connections"]:
            break
    triggers = [t for t, _ in Connection.Trigger.choices]
    frequencies = [f for f, _ in Connection.Frequency.choices]
    Connection.objects.bulk_create(
        Connection(
            project=project,
            source=systems[a],
            target=systems[b],
            direction=(
                Connection.Direction.BIDIRECTIONAL if k % 5 == 0 else Connection.Direction.ONE_WAY
            ),
            trigger=triggers[k % len(triggers)],
            frequency=frequencies[k % len(frequencies)],
            volume_per_day=1000 + 10 * k,
            peak_per_day=(1000 + 10 * k) * (6 if k % 4 == 0 else 2),
        )
        for k, (a, b) in enumerate(pairs)
    )
    SuccessCriterion.objects.bulk_create(
        SuccessCriterion(
            project=project,
            metric=f"sync latency {i}",
            comparator="<=",
            target=None if i % 10 == 9 else Decimal(5 + i % 3),
            unit="minutes",
            attainment_pct=Decimal("99.9"),
            window_value=30,
            window_unit="days",
            position=i,
        )
        for i in range(spec["criteria"])
    )
    DataElement.objects.bulk_create(
        DataElement(
            project=project,
            name=f"element {i:03d}",
            source_of_truth=None if i % 8 == 7 else systems[i % n],
            notes="customer status" if i % 2 else "",
        )
        for i in range(spec["elements"])
    )
    Objective.objects.create(
        project=project,
        business_objective="No inactive customer is invoiced.",
        stakeholders_consulted="Head of Sales Ops – CRM owner\nBilling lead",
    )
    PatternDecision.objects.create(
        project=project,
        pattern=PatternDecision.Pattern.HUB_AND_SPOKE,
        rationale="Many systems and growing.",
        tools="MuleSoft",
    )
    return project


def ensure_data(fresh: bool):
    """The bench user and both projects; rebuilt only when their row counts are off."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from planner.models import IntegrationProject

    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=USERNAME, defaults={"email": f"{USERNAME}@example.com"}
    )
    if created or not user.check_password(PASSWORD):
        user.set_password(PASSWORD)
        user.save()
    projects = {}
    for label, spec in (("small", SMALL), ("big", BIG)):
        existing = list(IntegrationProject.objects.filter(owner=user, name=spec["name"]))
        if (
            not fresh
            and len(existing) == 1
            and _counts(existing[0]) == _expected(spec)
            and existing[0].memberships.filter(user=user).exists()
        ):
            projects[label] = existing[0]
            continue
        with transaction.atomic():
            for p in existing:
                p.delete()
            projects[label] = _build(user, spec)
        print(f"Built the {label} project (id {projects[label].pk}).")
    for label, p in projects.items():
        c = _counts(p)
        print(
            f"  {label:<5} id {p.pk:<5} {c['systems']:>3} systems, {c['connections']:>3} "
            f"connections, {c['criteria']:>3} criteria, {c['elements']:>3} data elements"
        )
    return user, projects


# --------------------------------------------------------------------------------------------
# Queries per page

# Literals and server-side cursor names vary per query; the statement's shape does not.
_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+\b|_django_curs_\w+")


def _shape(sql: str) -> str:
    return _LITERALS.sub("?", sql)


def count_queries(user, projects) -> tuple[bool, list]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    rows, ok, details = [], True, []
    for label, name, kwargs in PAGES:
        counts, shapes = {}, {}
        for size in ("small", "big"):
            project = projects[size]
            url = reverse(name, kwargs={"project_id": project.pk, **kwargs})
            client.get(url)  # warm-up: first-request caches (content types, templates)
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(url)
            if response.status_code != 200 or html.escape(project.name) not in response.text:
                raise SystemExit(f"{url} answered {response.status_code} without the project")
            counts[size] = len(ctx.captured_queries)
            shapes[size] = Counter(_shape(q["sql"]) for q in ctx.captured_queries)
        grows = counts["big"] > counts["small"]
        ok &= not grows
        rows.append((label, counts["small"], counts["big"], "GROWS" if grows else "ok"))
        if grows:
            extra = shapes["big"] - shapes["small"]
            details.append((label, extra.most_common(5)))
    print_table(
        "Queries per page (warm; small vs big project)",
        ("page", "small", "big", "verdict"),
        rows,
    )
    for label, extra in details:
        print(f"\n{label}: statements the big project runs more often (extra count, SQL):")
        for sql, n in extra:
            print(f"  +{n:<4} {sql[:300]}")
    return ok, rows


# --------------------------------------------------------------------------------------------
# HTTP load through gunicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(conn: http.client.HTTPConnection, method: str, path: str, headers=None, body=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response, data


def _cookies(response) -> dict:
    jar = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return {k: m.value for k, m in jar.items()}


def wait_ready(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            response, _ = _request(conn, "GET", "/accounts/login/")
            conn.close()
            if response.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not answering after {timeout}s:\n{log.read_text()}")


def login(port: int) -> str:
    """Sign in through the form, as a browser would; return the Cookie header to send."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    response, body = _request(conn, "GET", "/accounts/login/")
    cookies = _cookies(response)
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    if response.status != 200 or not match or "csrftoken" not in cookies:
        raise RuntimeError(f"login page: {response.status}, no CSRF token")
    form = urlencode(
        {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": match[1].decode()}
    )
    response, _ = _request(
        conn,
        "POST",
        "/accounts/login/",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookies['csrftoken']}",
            "Referer": f"http://127.0.0.1:{port}/accounts/login/",
        },
        body=form,
    )
    cookies.update(_cookies(response))
    conn.close()
    if response.status != 302 or "sessionid" not in cookies:
        raise RuntimeError(f"login failed: {response.status}, cookies {sorted(cookies)}")
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def hammer(port: int, path: str, cookie: str, expect: bytes, clients: int, total: int):
    """`total` GETs of `path` from `clients` threads, each on its own (keep-alive) connection."""
    result = LoadResult()
    lock = threading.Lock()
    remaining = [total]
    start = threading.Barrier(clients + 1)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        while True:
            with lock:
                if remaining[0] == 0:
                    break
                remaining[0] -= 1
            t0 = time.perf_counter()
            try:
                response, body = _request(conn, "GET", path, headers={"Cookie": cookie})
                problem = None
                if response.status != 200:
                    problem = f"status {response.status}"
                elif expect not in body:
                    problem = "project name missing from the page"
            except (OSError, http.client.HTTPException) as exc:
                conn.close()  # reconnects on the next request
                problem = f"{type(exc).__name__}: {exc}"
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                if problem:
                    result.failures.append(problem)
                else:
                    result.latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - t0
    return result


def server_cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) used so far by gunicorn's worker processes (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    except OSError:
        return float("nan")
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def load_test(env: dict, projects, clients: int, requests: int) -> tuple[bool, list]:
    from django.urls import reverse

    port = free_port()
    log = Path(env["AETHON_VAR_DIR"]) / "gunicorn.log"
    gunicorn = VENV_BIN / "gunicorn"
    if not gunicorn.exists():
        gunicorn = Path(sys.executable).with_name("gunicorn")
    cmd = [str(gunicorn), "aethon.wsgi", "-w", "2", "-b", f"127.0.0.1:{port}"]
    genv = {**env, "DJANGO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
    project = projects["big"]
    expect = html.escape(project.name).encode()
    rows, ok = [], True
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=genv, stdout=log_file, stderr=log_file)
    print(f"\ngunicorn pid {proc.pid} on 127.0.0.1:{port} (2 sync workers, DEBUG off)")
    try:
        wait_ready(port, proc, log)
        cookie = login(port)
        for label, name, kwargs in LOAD_PAGES:
            path = reverse(name, kwargs={"project_id": project.pk, **kwargs})
            warm = hammer(port, path, cookie, expect, 2, 10)
            if warm.failures:
                raise RuntimeError(f"{path}: {warm.failures[0]}")
            for n_clients, n_requests in ((1, max(20, requests // 10)), (clients, requests)):
                cpu_before = server_cpu_seconds(proc.pid)
                r = hammer(port, path, cookie, expect, n_clients, n_requests)
                cpu_ms = 1000 * (server_cpu_seconds(proc.pid) - cpu_before) / n_requests
                good = len(r.latencies)
                ok &= not r.failures
                rows.append(
                    (
                        label,
                        n_clients,
                        f"{good}/{n_requests}",
                        f"{statistics.median(r.latencies):.1f}" if good else "-",
                        f"{percentile(r.latencies, 95):.1f}" if good else "-",
                        f"{good / r.seconds:.1f}" if r.seconds else "-",
                        f"{cpu_ms:.1f}",
                        f"{os.getloadavg()[0]:.1f}",
                    )
                )
                for problem, n in Counter(r.failures).most_common(3):
                    print(f"  {label}: {n} x {problem}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(f"gunicorn stopped (exit {proc.returncode}).")
        if not ok or proc.returncode not in (0, -15):
            tail = log.read_text(errors="replace").splitlines()[-20:]
            print("gunicorn log (last lines):\n  " + "\n  ".join(tail))
    print_table(
        f"Big project through gunicorn ({requests} requests per page at {clients} clients)",
        ("page", "clients", "200 + name", "median ms", "p95 ms", "req/s", "CPU ms/req", "load"),
        rows,
    )
    return ok, rows


# --------------------------------------------------------------------------------------------


def print_table(title: str, headers: tuple, rows: list) -> None:
    cells = [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values) -> str:
        first = f"{values[0]:<{widths[0]}}"
        rest = (f"{v:>{w}}" for v, w in zip(values[1:], widths[1:], strict=True))
        return "  ".join((first, *rest))

    print(f"\n{title}")
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", default=DEFAULT_DB_URL)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=400, help="requests per page")
    parser.add_argument("--fresh", action="store_true", help="rebuild the projects")
    parser.add_argument("--no-http", action="store_true", help="count queries only")
    args = parser.parse_args()
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be positive")

    var_dir = Path(tempfile.mkdtemp(prefix="aethon-bench-pages-"))
    env = {
        **os.environ,
        "DATABASE_URL": args.db_url,
        "DJANGO_SETTINGS_MODULE": "aethon.settings",
        "AETHON_VAR_DIR": str(var_dir),
        # One key for every process, so gunicorn's workers all accept the session cookie.
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_DEBUG": "0",
        "AETHON_LOG_LEVEL": "WARNING",
    }
    env.pop("AETHON_ENV", None)
    try:
        ensure_database(args.db_url)
        migrate(env)
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import django

        # WhiteNoise warns that STATIC_ROOT is missing (collectstatic not run): irrelevant here.
        warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
        django.setup()
        user, projects = ensure_data(args.fresh)
        queries_ok, _ = count_queries(user, projects)
        load_ok = True
        if not args.no_http:
            from django.db import connections

            connections.close_all()
            load_ok, _ = load_test(env, projects, args.clients, args.requests)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
    print()
    if not queries_ok:
        print("FAIL: the big project needs more queries than the small one (N+1).")
    if not load_ok:
        print("FAIL: some requests did not answer 200 with the project name.")
    if queries_ok and load_ok:
        print("OK")
    return 0 if queries_ok and load_ok else 1


if __name__ == "__main__":
    sys.exit(main())
