"""Step 3: the integration pattern decision (page and form).

The analysis itself is planner.checklist.patterns: the inventory and the runbook read it too.
"""

from django import forms
from django.http import HttpRequest, HttpResponse

from planner.checklist.patterns import TRADE_OFFS, analyse
from planner.models import IntegrationProject, PatternDecision
from planner.steps.views import save_single, single_form
from planner.web.forms import ProjectScopedForm
from planner.web.permissions import project_access


class PatternDecisionForm(ProjectScopedForm):
    class Meta:
        model = PatternDecision
        fields = ["pattern", "rationale", "tools"]
        widgets = {"rationale": forms.Textarea(attrs={"rows": 4})}


def page(request, project, ctx: dict, forms: dict) -> None:
    ev = ctx["evidence"]
    ctx["analysis"] = analyse(ev.systems, ev.connections)
    ctx["trade_offs"] = TRADE_OFFS
    ctx["decision_form"] = single_form(
        forms, "decision_form", PatternDecisionForm, ev.decision, PatternDecision, project
    )


@project_access("edit")
def decision_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    return save_single(
        request, project, 3, PatternDecision, PatternDecisionForm, "decision_form", "decision"
    )
