"""Sample mode: a hash-chosen share of keys, the same on both sides, with the estimate's
interval; per-column shares of the differences. Page, API and the one figure definition."""

import uuid

import polars as pl
import pytest
from django.test import Client
from django.urls import reverse

from planner.api.tokens import create_token
from planner.metrics import figures as kpis
from planner.runs import service as validation
from planner.runs.pushdown import sample_where
from tests.conftest import client_for
from tests.factories import (
    ConnectionFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)
from tests.runs.conftest import PG, map_same_names, pg_side, sqlite_side, sqlite_upload


def test_the_wilson_interval_of_a_proportion():
    assert kpis.wilson_interval(0, 0) is None
    low, high = kpis.wilson_interval(0, 100)
    assert low == 0 and high == pytest.approx(0.036995, abs=1e-6)
    low, high = kpis.wilson_interval(10, 100)
    assert (low, high) == (pytest.approx(0.055229, abs=1e-6), pytest.approx(0.174367, abs=1e-6))
    assert kpis.wilson_interval(100, 100)[1] == pytest.approx(1.0)


def test_a_full_run_has_no_estimate_and_columns_have_shares():
    f = {"matched_count": 200, "equal_count": 190, "mismatch_counts": {"a": 10, "b": 0}}
    assert kpis.sample_estimate(f) is None
    assert kpis.column_mismatch_pct(f) == {"a": 5.0, "b": 0.0}
    assert kpis.column_mismatch_pct({"matched_count": 0}) == {}


N = 2000
SOURCE = pl.DataFrame({"id": list(range(N)), "name": [f"n{i}" for i in range(N)]})
TARGET = SOURCE.with_columns(
    pl.when(pl.col("id") % 10 == 0).then(pl.lit("x")).otherwise(pl.col("name")).alias("name")
)


def connection(project):
    systems = [SystemFactory(project=project, name=n) for n in ("CRM", "Billing")]
    for system, table, frame in zip(systems, ("crm", "billing"), (SOURCE, TARGET), strict=True):
        SystemEndpointFactory(system=system, key_fields="id", **sqlite_upload(table, frame))
    conn = ConnectionFactory(project=project, source=systems[0], target=systems[1])
    map_same_names(conn, [("id", "integer"), ("name", "string")])
    return conn


@pytest.fixture
def run_env(db, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.AETHON_RUN_CHUNK_ROWS = 500
    monkeypatch.setattr(validation, "dispatch", lambda run: None)


def test_a_sampled_run_through_the_api_estimates_the_mismatch_rate(run_env):
    project = ProjectFactory()
    conn = connection(project)
    _token, raw = create_token(project.owner, "sample")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    url = f"/api/projects/{project.pk}/connections/{conn.pk}/runs"
    client = Client()
    for bad in (0, 100):
        refused = client.post(f"{url}?sample_percent={bad}", **headers)
        assert refused.status_code == 400
        assert "Sample: give a percentage of keys from 1 to 99" in refused.json()["detail"]
    started = client.post(f"{url}?sample_percent=20", **headers)
    assert started.status_code == 202, started.content
    assert started.json()["sample_percent"] == 20
    validation.execute_run(started.json()["id"], heartbeat=False)
    results = client.get(
        f"/api/projects/{project.pk}/runs/{started.json()['id']}/results", **headers
    ).json()
    rec = next(s for s in results["stages"] if s["name"] == "reconciliation")["figures"]
    # The same keys on both sides: a sample finds no missing or extra key that is not there.
    assert rec["missing_in_target_count"] == 0 and rec["extra_in_target_count"] == 0
    estimate = results["sample_estimate"]
    assert 200 < estimate["keys"] < 600  # about 20 % of 2,000
    assert estimate["keys"] == rec["matched_count"]
    assert estimate["low_pct"] < 10 < estimate["high_pct"]  # the true rate is 10 %
    assert estimate["mismatch_rate_pct"] == pytest.approx(
        100 * rec["mismatched_count"] / rec["matched_count"], abs=1e-3
    )
    assert results["column_mismatch_pct"]["name"] == estimate["mismatch_rate_pct"]
    html = (
        client_for(project.owner)
        .get(reverse("planner:run_show", args=[project.pk, started.json()["id"]]))
        .content.decode()
    )
    assert "Sample of 20% of keys" in html
    assert f"{estimate['keys']} keys compared" in html
    assert "% of matched keys)" in html


def test_the_run_form_refuses_a_sample_that_is_not_a_number(run_env):
    project = ProjectFactory()
    conn = connection(project)
    page = client_for(project.owner).post(
        reverse("planner:run_start", args=[project.pk, conn.pk]),
        {"kind": "validation", "sample_percent": "ten"},
        follow=True,
    )
    assert "Sample: give a percentage of keys from 1 to 99" in page.content.decode()
    assert not conn.validation_runs.exists()


def test_a_full_run_compares_every_key(run_env):
    project = ProjectFactory()
    conn = connection(project)
    run = validation.start_validation_run(conn, project.owner)
    validation.execute_run(run.pk, heartbeat=False)
    rec = run.stages.get(name="reconciliation").figures
    assert rec["matched_count"] == N
    assert kpis.sample_estimate(rec) is None


def test_sqlite_and_postgres_sample_the_same_keys():
    import psycopg
    from psycopg import sql

    name = f"aethon_sample_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(**PG, dbname="postgres", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is unreachable: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        frame = pl.DataFrame({"k": [f"K{i}" for i in range(300)], "n": list(range(300))})
        kept = []
        for side in (
            sqlite_side("s", "t", frame, ["k", "n"]),
            pg_side(name, "s", "t", frame, ["k", "n"]),
        ):
            where = sample_where(side, ["k", "n"], 30)

            def query(ds: str, where: str = where) -> str:
                return f"SELECT k FROM {ds} WHERE {where}"  # noqa: S608

            with side.connector.statements() as run:
                kept.append(sorted(r[0] for r in run(query)))
        assert kept[0] == kept[1]
        assert 45 < len(kept[0]) < 135
    finally:
        with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_a_stopped_or_sampled_run_does_not_pass_its_counts_off_as_the_tables(
    db, monkeypatch, settings, tmp_path
):
    """A run stopped after N differences measured a prefix of the keys and a sample measured
    a share of them: neither may feed "records in sync", nor a stopped run any table figure
    (criteria, reviews, alerts and service-level points read these)."""
    from decimal import Decimal

    from planner.models import SliPoint
    from tests.factories import CriterionFactory

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.AETHON_RUN_CHUNK_ROWS = 10
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    n = 200
    source = pl.DataFrame({"id": list(range(n)), "name": [f"n{i}" for i in range(n)]})
    late = pl.when(pl.col("id") >= 100).then(pl.lit("x")).otherwise(pl.col("name"))
    target = source.with_columns(late.alias("name"))
    project = ProjectFactory()
    crm, erp = (
        SystemFactory(project=project, name="CRM"),
        SystemFactory(project=project, name="ERP"),
    )
    SystemEndpointFactory(system=crm, key_fields="id", **sqlite_upload("s", source))
    SystemEndpointFactory(system=erp, key_fields="id", **sqlite_upload("t", target))
    connection = ConnectionFactory(project=project, source=crm, target=erp)
    map_same_names(connection, [("id", "integer"), ("name", "string")])
    agreement = CriterionFactory(
        project=project,
        metric="agreement",
        metric_key="agreement_pct",
        unit="%",
        comparator=">=",
        target=Decimal("99"),
    )
    synced = CriterionFactory(
        project=project,
        metric="records",
        metric_key="records_synced",
        unit="records",
        comparator=">=",
        target=Decimal("100"),
    )

    def run(**limits):
        run = validation.start_validation_run(connection, project.owner, **limits)
        validation.execute_run(run.pk, heartbeat=False)
        run.refresh_from_db()
        return run

    stopped = run(max_differences=1)
    reading = stopped.stages.get(name="reconciliation").figures["reading"]
    assert reading["stopped_early"]
    page = client_for(project.owner).get(reverse("planner:run_show", args=[project.pk, stopped.pk]))
    assert "Stopped after 1 difference: the counts cover the rows read until then, so the run" in (
        page.content.decode()
    )
    figures = kpis.of_run(stopped)
    for key in ("agreement_pct", "mismatch_rate_pct", "records_synced", "error_rate_pct"):
        assert key not in figures, (key, figures)
    assert figures["availability_pct"] == 100
    assert not SliPoint.objects.filter(criterion=agreement).exists()

    sampled = run(sample_percent=10)
    figures = kpis.of_run(sampled)
    assert "records_synced" not in figures
    assert 0 < figures["agreement_pct"] < 100  # the estimate of the tables' share
    assert not SliPoint.objects.filter(criterion=synced).exists()

    whole = run()
    assert kpis.of_run(whole)["records_synced"] == 100
    assert kpis.of_run(whole)["agreement_pct"] == 50
    assert SliPoint.objects.filter(criterion=synced).count() == 1
