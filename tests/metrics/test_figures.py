"""One definition of every figure: the run page, the API, reviews and go-live read the same."""

import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from planner.api.tokens import create_token
from planner.checklist import golive
from planner.metrics import figures as kpis
from planner.models import MetricKey, Monitor, RunStage, SuccessCriterion, ValidationRun
from planner.runs import service as validation
from planner.runs.stages import StageResult
from tests.conftest import client_for
from tests.factories import (
    CriterionFactory,
    MonitorFactory,
    ProjectFactory,
    ValidationRunFactory,
    ready_project,
)

# 10 source rows: 2 with a null key and 2 surplus duplicates, so 6 are compared; of those 5
# match the target and 3 are equal; the target has 1 extra row and 1 null-key row.
COMPARED = {
    "source_count": 10,
    "target_count": 7,
    "matched_count": 5,
    "equal_count": 3,
    "mismatched_count": 2,
    "missing_in_target_count": 1,
    "extra_in_target_count": 1,
    "null_keys_source": 2,
    "null_keys_target": 1,
    "duplicate_rows_source": 2,
    "duplicate_rows_target": 0,
}


def test_null_and_duplicate_key_rows_count_against_agreement_everywhere(db):
    # Every row either side offered: 5 matched + 1 missing + 1 extra + 3 null + 2 duplicate.
    rows = kpis.rows_compared(COMPARED)
    assert rows == 12
    run = ValidationRunFactory(status=ValidationRun.Status.FAILED)
    stage = RunStage.objects.create(run=run, name="reconciliation", position=0, figures=COMPARED)
    measured = kpis.of_run(run, [stage])
    assert measured["agreement_pct"] == 25.0  # 3 equal of 12
    assert measured["mismatch_rate_pct"] == 75.0
    # The run page's summary and the review/alert figure are the same number.
    summary = validation._summary({"reconciliation": StageResult("failed", COMPARED)})
    assert summary["agreement_pct"] == measured["agreement_pct"]
    # And the API reports it by the same definition, with its unit.
    ValidationRun.objects.filter(pk=run.pk).update(summary=summary)
    _, token = create_token(run.project.owner, "ci")
    response = Client().get(
        f"/api/projects/{run.project_id}/runs/{run.pk}/results",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    figures = {f["key"]: f for f in response.json()["figures"]}
    assert figures["agreement_pct"]["value"] == 25.0 and figures["agreement_pct"]["unit"] == "%"


def test_every_catalogue_key_has_one_function_and_a_unit():
    # Propagation lag is not a run's figure: it is measured per key by metrics.freshness and
    # judged by compliance over the criterion's window (metrics.slo).
    keys = {str(k) for k in MetricKey if k not in (MetricKey.EXTERNAL, MetricKey.FRESHNESS)}
    assert keys == set(kpis.BY_KEY)
    assert kpis.unit_of("records_synced") == "records" and kpis.unit_of("error_rate_pct") == "%"


def test_a_criterion_nothing_measured_is_no_evidence_and_blocks_go_live(db):
    project, _ = ready_project()
    assert golive.verdict(project).ready, golive.verdict(project).reasons
    outside = CriterionFactory(project=project, metric="invoices paid on time", unit="%")
    assert outside.metric_key == MetricKey.EXTERNAL
    Monitor.objects.create(
        project=project, kind="other", name="x", metric_key="error_rate_pct", criterion=outside
    )
    judged = kpis.judge_criterion(outside, {})
    assert judged.outcome == kpis.NO_EVIDENCE and "outside Aethon" in judged.reason
    v = golive.verdict(project)
    assert not v.ready
    reason = next(r for r in v.reasons if r.kind == "criterion")
    assert "has no evidence" in reason.text and reason.href.endswith(f"#criterion-{outside.pk}")
    # The team records dated manual evidence: the gate accepts it.
    SuccessCriterion.objects.filter(pk=outside.pk).update(
        evidence_value=Decimal("2"), evidence_date=timezone.localdate()
    )
    assert not [r for r in golive.verdict(project).reasons if r.kind == "criterion"]


def test_a_figure_no_run_produced_is_no_evidence_not_met():
    c = SuccessCriterion(metric="latency", metric_key="latency_ms", comparator="<=", target=5)
    judged = kpis.judge_criterion(c, {"error_rate_pct": 0})
    assert judged.outcome == kpis.NO_EVIDENCE
    assert "no validation run measured the connection latency" in judged.reason


def test_the_criterion_form_picks_a_figure_and_states_its_unit(db):
    project = ProjectFactory()
    client = client_for(project.owner)
    url = reverse("planner:criterion_add", args=[project.pk])
    base = {
        "add-criterion-metric": "records agreeing",
        "add-criterion-comparator": ">=",
        "add-criterion-target": "99",
        "add-criterion-window_value": "30",
        "add-criterion-window_unit": "days",
    }
    # Saved without a figure (like a missing target), it is not measurable until one is picked.
    assert client.post(url, base).status_code == 302
    unplaced = SuccessCriterion.objects.get(project=project)
    assert not unplaced.is_measurable
    page = client.get(reverse("planner:step", args=[project.pk, 1]))
    assert b"Pick the figure that measures it" in page.content
    unplaced.delete()
    wrong = {**base, "add-criterion-metric_key": "agreement_pct", "add-criterion-unit": "records"}
    response = client.post(url, wrong)
    assert b"The agreement is measured in %" in response.content
    assert not SuccessCriterion.objects.filter(project=project).exists()
    ok = {**base, "add-criterion-metric_key": "agreement_pct"}
    assert client.post(url, ok).status_code == 302
    c = SuccessCriterion.objects.get(project=project)
    assert c.metric_key == "agreement_pct" and c.unit == "%"
    half = {
        **base,
        "add-criterion-metric": "paid on time",
        "add-criterion-metric_key": "external",
        "add-criterion-evidence_value": "97",
    }
    response = client.post(url, half)
    assert b"needs both the measured value and its date" in response.content


def test_existing_free_text_rows_are_placed_by_todays_matching_or_flagged(db):
    migration = importlib.import_module("planner.migrations.0007_evidence_figures_alerts")
    project = ProjectFactory()
    placed = CriterionFactory(project=project, metric="mismatch rate", unit="%", metric_key="")
    seconds = CriterionFactory(
        project=project, metric="response latency", unit="s", target=Decimal("2"), metric_key=""
    )
    lost = CriterionFactory(project=project, metric="customer happiness", unit="", metric_key="")
    eq = CriterionFactory(
        project=project, metric="error rate", unit="%", comparator="=", target=0, metric_key=""
    )
    old_monitor = MonitorFactory(
        project=project, kind="criterion", criterion=eq, comparator="=", metric_key=""
    )
    other = MonitorFactory(project=project, kind="other", name="vibes", unit="", metric_key="")
    migration.place_rows(apps, None)
    for row in (placed, seconds, lost, eq, old_monitor, other):
        row.refresh_from_db()
    assert placed.metric_key == "mismatch_rate_pct" and not placed.metric_flag
    assert seconds.metric_key == "latency_ms" and seconds.target == 2000 and seconds.unit == "ms"
    assert lost.metric_key == "" and "Could not be placed" in lost.metric_flag
    assert old_monitor.metric_key == "error_rate_pct" and old_monitor.comparator == "!="
    assert other.metric_key == "" and other.metric_flag
    # The flag is shown to the team on step 1.
    page = client_for(project.owner).get(reverse("planner:step", args=[project.pk, 1]))
    assert b"Could not be placed" in page.content


@pytest.mark.parametrize("key", [k for k in kpis.BY_KEY])
def test_docs_list_every_figure(key):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "figures.md").read_text()
    assert f"`{key}`" in text


@pytest.mark.parametrize("rows", [2_000_000, 10_000_000, 50_000_000])
def test_one_difference_in_millions_of_rows_is_never_rounded_away(rows):
    """Rounding to four places must not turn one differing row into 100 % agreement, nor one
    violation into a 0 % error rate: "= 100" and "> 0" have to see it."""
    figures = kpis.derive({"keys": rows, "equal": rows - 1, "records": rows, "violations": 1})
    assert figures[MetricKey.AGREEMENT] < 100
    assert figures[MetricKey.MISMATCH_RATE] > 0
    assert figures[MetricKey.ERROR_RATE] > 0
    assert figures[MetricKey.AGREEMENT] + figures[MetricKey.MISMATCH_RATE] == 100
    assert not kpis.holds(figures[MetricKey.AGREEMENT], "=", 100)
    assert kpis.holds(figures[MetricKey.MISMATCH_RATE], ">", 0)
    assert (
        kpis.column_mismatch_pct({"matched_count": rows, "mismatch_counts": {"name": 1}})["name"]
        > 0
    )
    exact = kpis.derive({"keys": rows, "equal": rows, "records": rows, "violations": 0})
    assert exact[MetricKey.AGREEMENT] == 100
    assert exact[MetricKey.MISMATCH_RATE] == 0
    assert exact[MetricKey.ERROR_RATE] == 0
    none = kpis.derive({"keys": rows, "equal": 1, "records": rows, "violations": rows - 1})
    assert none[MetricKey.AGREEMENT] > 0 and none[MetricKey.ERROR_RATE] < 100
