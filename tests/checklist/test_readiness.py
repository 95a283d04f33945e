from decimal import Decimal

from planner.checklist.readiness import (
    AWAITING_SIGN_OFF,
    COMPLETE,
    IN_PROGRESS,
    NOT_STARTED,
    project_readiness,
)
from tests.factories import (
    CriterionFactory,
    DataElementFactory,
    DecisionFactory,
    ObjectiveFactory,
    SystemFactory,
    SystemProfileFactory,
    approve_step,
)


def failing(readiness, number):
    """The step's own rules that fail (the sign-off requirement is tested in test_signoff)."""
    outcomes = readiness.for_step(number).outcomes
    return {o.rule.code for o in outcomes if not o.passed and o.rule.code != "signed_off"}


def test_a_new_project_is_zero_percent_and_nothing_started(project):
    r = project_readiness(project)
    assert r.percent == 0
    assert [s.state for s in r.steps] == [NOT_STARTED] * 7


def test_step1_completes_only_when_every_rule_holds(project):
    ObjectiveFactory(project=project)
    r = project_readiness(project)
    assert r.for_step(1).state == IN_PROGRESS
    assert failing(r, 1) == {"has_criterion", "sources_of_truth"}

    vague = CriterionFactory(project=project, window_value=None)
    DataElementFactory(project=project, source_of_truth=None, name="customer status")
    r = project_readiness(project)
    assert failing(r, 1) == {"criteria_measurable", "sources_of_truth"}
    findings = [f.text for o in r.for_step(1).outcomes for f in o.findings]
    assert "'customer status' has no source of truth." in findings
    assert any(
        f.anchor == f"criterion-{vague.pk}" for o in r.for_step(1).outcomes for f in o.findings
    )

    vague.window_value = 30
    vague.save()
    element = project.data_elements.get()
    element.source_of_truth = SystemProfileFactory(system=SystemFactory(project=project)).system
    element.save()
    r = project_readiness(project)
    # The rules hold; the step completes once an approver signs this version off.
    assert r.for_step(1).state == AWAITING_SIGN_OFF
    assert failing(r, 1) == set()
    approve_step(project, 1)
    r = project_readiness(project)
    assert r.for_step(1).state == COMPLETE
    assert r.percent == round(100 / 7)


def test_a_criterion_without_a_target_is_not_measurable(project):
    CriterionFactory(project=project, target=None)
    assert "criteria_measurable" in failing(project_readiness(project), 1)
    assert not CriterionFactory.build(metric=" ", target=Decimal(1), window_value=1).is_measurable


def test_step3_needs_a_pattern_and_a_rationale(project):
    decision = DecisionFactory(project=project, rationale="")
    SystemFactory.create_batch(2, project=project)
    r = project_readiness(project)
    assert r.for_step(3).state == IN_PROGRESS
    assert failing(r, 3) == {"decision_with_rationale"}
    decision.rationale = "Growing stack."
    decision.save()
    r = project_readiness(project)
    assert r.for_step(3).state == AWAITING_SIGN_OFF
    approve_step(project, 3)
    assert project_readiness(project).for_step(3).state == COMPLETE


def test_percent_weighs_each_step_by_its_passing_rules(project):
    # Step 1 with only an objective: 'objective stated' holds, and 'every criterion is
    # measurable', 'every system profiled' and 'every connection has owners' hold vacuously
    # while 'at least one criterion' fails, and the sign-off is missing: 4 of 7 rules.
    ObjectiveFactory(project=project)
    r = project_readiness(project)
    assert r.for_step(1).passed_count == 4
    assert r.percent == round(100 * (4 / 7) / 7)


def test_readiness_takes_a_fixed_number_of_queries(project, django_assert_max_num_queries):
    # Evidence with every step's one-per-project records (6), steps 4-7 (5), sign-off
    # requirements, signers and sign-offs (3), the guides' practices (7).
    for _ in range(20):
        CriterionFactory(project=project)
        DataElementFactory(project=project)
    with django_assert_max_num_queries(23):  # 2 for step 7's backlog: is it live, its items
        project_readiness(project)
