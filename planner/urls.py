from django.urls import include, path

from planner.api import pages as api_pages
from planner.collaboration import views as collaboration
from planner.project_templates import views as templates
from planner.reviews import views as reviews
from planner.runbook import views as runbook
from planner.runs import endpoint_views
from planner.runs import views as runs
from planner.steps import (
    canary,
    deployment,
    freshness,
    monitoring,
    objectives,
    pattern,
    practices,
    service_levels,
    signoff,
    testing,
    training,
)
from planner.steps import (
    views as steps,
)
from planner.steps.mapping import io_views as mapping_io
from planner.steps.mapping import views as mapping
from planner.web import (
    dashboard,
    governance,
    history,
    inventory,
    lifecycle,
    members,
    projects,
    rows,
)
from planner.web.rows import RowKind

app_name = "planner"


def row_urls(prefix: str, kind: RowKind, add: bool = True) -> list:
    """add / show / edit / delete for one kind of table row."""
    extra, name = {"kind": kind}, kind.name
    adding = [path(f"{prefix}/add/", rows.row_add, extra, name=f"{name}_add")] if add else []
    return [
        *adding,
        path(f"{prefix}/<int:pk>/", rows.row_show, extra, name=f"{name}_show"),
        path(f"{prefix}/<int:pk>/edit/", rows.row_edit, extra, name=f"{name}_edit"),
        path(f"{prefix}/<int:pk>/delete/", rows.row_delete, extra, name=f"{name}_delete"),
    ]


project_patterns = [
    path("", projects.project_overview, name="overview"),
    path("settings/", projects.project_settings, name="settings"),
    path("settings/archive/", lifecycle.project_archive, name="project_archive"),
    path("settings/delete/", lifecycle.project_delete, name="project_delete"),
    path("settings/save-as-template/", templates.template_save, name="template_save"),
    path("members/", members.members, name="members"),
    path("members/<int:pk>/role/", members.member_role, name="member_role"),
    path("members/<int:pk>/remove/", members.member_remove, name="member_remove"),
    path("systems/", inventory.inventory, name="inventory"),
    *row_urls("systems", inventory.SYSTEMS),
    *row_urls("connections", inventory.CONNECTIONS),
    path("steps/<int:number>/", steps.step, name="step"),
    path("steps/1/objective/", objectives.objective_save, name="objective_save"),
    *row_urls("steps/1/criteria", objectives.CRITERIA),
    path(
        "steps/1/criteria/<int:pk>/service-level/",
        service_levels.criterion_page,
        name="criterion_service_level",
    ),
    *row_urls("steps/1/elements", objectives.ELEMENTS),
    path(
        "steps/1/criteria/<int:pk>/freshness/",
        freshness.criterion_freshness,
        name="criterion_freshness",
    ),
    path(
        "steps/1/criteria/<int:pk>/freshness/measure/",
        freshness.criterion_measure,
        name="criterion_measure",
    ),
    path(
        "steps/1/criteria/<int:pk>/freshness/canary/",
        canary.canary_settings,
        name="criterion_canary",
    ),
    path(
        "steps/1/criteria/<int:pk>/freshness/canary/probe/",
        canary.canary_probe_now,
        name="criterion_canary_probe",
    ),
    *row_urls("steps/2/freshness", freshness.FRESHNESS),
    path("steps/2/connections/<int:connection_id>/", mapping.mapping_editor, name="mapping_editor"),
    path("steps/2/connections/<int:connection_id>/add/", mapping.mapping_add, name="mapping_add"),
    path(
        "steps/2/connections/<int:connection_id>/check-rule/",
        mapping.rule_check,
        name="mapping_rule_check",
    ),
    path("steps/2/connections/<int:connection_id>/try/", mapping.mapping_try, name="mapping_try"),
    path(
        "steps/2/connections/<int:connection_id>/import/",
        mapping_io.mapping_import,
        name="mapping_import",
    ),
    path(
        "steps/2/connections/<int:connection_id>/export.<str:fmt>",
        mapping_io.mapping_export,
        name="mapping_export",
    ),
    *row_urls("steps/2/mappings", mapping.MAPPING, add=False),
    path(
        "steps/2/mappings/<int:pk>/duplicate/",
        mapping.mapping_duplicate,
        name="mapping_duplicate",
    ),
    path("steps/2/mappings/<int:pk>/cell/", mapping.mapping_cell, name="mapping_cell"),
    path(
        "steps/2/mappings/<int:pk>/move/<str:direction>/",
        mapping.mapping_move,
        name="mapping_move",
    ),
    # The guides' practices, per connection.
    *row_urls("steps/1/owners", practices.OWNERSHIPS),
    *row_urls("steps/2/error-handling", practices.STRATEGIES),
    *row_urls("steps/2/security", practices.SECURITY),
    *row_urls("steps/2/personal-data", practices.PERSONAL),
    *row_urls("steps/4/backfill", practices.BACKFILLS),
    *row_urls("steps/1/systems", practices.PROFILES),
    *row_urls("steps/5/rollout", practices.PHASES),
    path(
        "steps/4/cases/from-error-handling/",
        practices.error_cases_generate,
        name="error_cases_generate",
    ),
    path(
        "steps/6/monitors/dead-letter/", practices.dead_letter_monitor, name="dead_letter_monitor"
    ),
    path("steps/3/decision/", pattern.decision_save, name="decision_save"),
    # Steps 4 to 7, sign-offs and the runbook.
    path("steps/4/plan/", testing.testplan_save, name="testplan_save"),
    *row_urls("steps/4/cases", testing.CASES),
    path("steps/4/cases/<int:pk>/evidence/", testing.testcase_evidence, name="testcase_evidence"),
    path("steps/5/deployment/", deployment.deployment_save, name="deployment_save"),
    *row_urls("steps/5/triggers", deployment.TRIGGERS),
    *row_urls("steps/5/rollback", deployment.ROLLBACK_STEPS),
    *row_urls("steps/6/monitors", monitoring.MONITORS),
    path(
        "steps/6/monitors/for-criterion/<int:pk>/",
        monitoring.monitor_from_criterion,
        name="criterion_monitor",
    ),
    path("steps/7/training/", training.training_save, name="training_save"),
    *row_urls("steps/7/incidents", training.INCIDENTS),
    *row_urls("steps/7/backlog", training.IMPROVEMENTS),
    *row_urls("steps/7/changelog", training.CHANGELOG),
    path("steps/<int:number>/signoff/", signoff.signoff, name="signoff"),
    path("signoffs/settings/", signoff.signoff_policy, name="signoff_policy"),
    path("runbook/", runbook.runbook, name="runbook"),
    path("runbook/preview/", runbook.runbook_preview, name="runbook_preview"),
    path("runbook/export/", runbook.runbook_export, name="runbook_export"),
    path("runbook/exports/<int:pk>/", runbook.export_status, name="export_status"),
    path("runbook/exports/<int:pk>/download/", runbook.export_download, name="export_download"),
    # Validation runs: connection settings of systems, runs, schedules
    path(
        "systems/<int:system_id>/connection/",
        endpoint_views.system_settings,
        name="system_settings",
    ),
    path(
        "systems/<int:system_id>/connection/test/",
        endpoint_views.system_test,
        name="system_test",
    ),
    path("runs/", runs.runs, name="runs"),
    path("runs/<int:pk>/", runs.run_show, name="run_show"),
    path("runs/<int:pk>/progress/", runs.run_progress, name="run_progress"),
    path("runs/<int:pk>/cancel/", runs.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/differences.csv", runs.run_differences, name="run_differences"),
    path("runs/<int:pk>/evidence/", runs.run_link, name="run_link"),
    path("connections/<int:connection_id>/runs/start/", runs.run_start, name="run_start"),
    path("connections/<int:connection_id>/runs/schedule/", runs.run_schedule, name="run_schedule"),
    # Go-live, health reviews and alerts
    path("go-live/", reviews.golive_page, name="golive"),
    path("go-live/revert/", reviews.golive_revert, name="golive_revert"),
    path("reviews/", reviews.reviews_page, name="reviews"),
    path("reviews/schedule/", reviews.review_schedule_save, name="review_schedule"),
    path("reviews/start/", reviews.review_start, name="review_start"),
    path("reviews/feedback/", reviews.feedback_add, name="feedback_add"),
    path("reviews/<int:pk>/", reviews.review_show, name="review_show"),
    path("reviews/<int:pk>/report.pdf", reviews.review_pdf, name="review_pdf"),
    path("alerts/", reviews.alerts_page, name="alerts"),
    path("alerts/<int:pk>/acknowledge/", reviews.alert_acknowledge, name="alert_acknowledge"),
    # Working as a team: assignments, comment threads, sign-off requests
    path("assign/<str:work>/<int:ref>/", collaboration.assign, name="assign"),
    path("assignments/<int:pk>/done/", collaboration.assignment_done, name="assignment_done"),
    path("steps/<int:number>/comments/", collaboration.step_comments, name="step_comments"),
    path(
        "steps/2/mappings/<int:pk>/comments/",
        collaboration.mapping_comments,
        name="mapping_comments",
    ),
    path("comments/<int:pk>/edit/", collaboration.comment_edit, name="comment_edit"),
    path("comments/<int:pk>/resolve/", collaboration.comment_resolve, name="comment_resolve"),
    path("mentions/", collaboration.mention_suggest, name="mention_suggest"),
    path("steps/<int:number>/signoff/ask/", collaboration.signoff_ask, name="signoff_ask"),
    path("history/", history.history, name="history"),
    path(
        "history/<slug:model>/<int:object_id>/",
        history.history_object,
        name="history_object",
    ),
]

urlpatterns = [
    path("", dashboard.portfolio, name="project_list"),
    path("account/tokens/", api_pages.api_tokens, name="api_tokens"),
    path("my-work/", collaboration.my_work, name="my_work"),
    path("notifications/", collaboration.notifications, name="notifications"),
    path("notifications/read/", collaboration.notifications_read, name="notifications_read"),
    path("notifications/bell/", collaboration.notifications_bell, name="notifications_bell"),
    path(
        "account/notifications/settings/",
        collaboration.notification_settings,
        name="notification_settings",
    ),
    path("governance/", governance.governance, name="governance"),
    path("governance.csv", governance.governance_csv, name="governance_csv"),
    path("projects/new/", projects.project_create, name="project_create"),
    path("projects/deleted/", lifecycle.deleted_projects, name="deleted_projects"),
    path(
        "projects/new/from-template/", templates.project_from_template, name="project_from_template"
    ),
    path("projects/<int:project_id>/", include(project_patterns)),
]
