from django.urls import include, path

from .views import history, inventory, members, projects, rows, steps

app_name = "planner"


def row_urls(prefix: str, kind: str) -> list:
    """add / show / edit / delete for one kind of table row."""
    extra = {"kind": kind}
    return [
        path(f"{prefix}/add/", rows.row_add, extra, name=f"{kind}_add"),
        path(f"{prefix}/<int:pk>/", rows.row_show, extra, name=f"{kind}_show"),
        path(f"{prefix}/<int:pk>/edit/", rows.row_edit, extra, name=f"{kind}_edit"),
        path(f"{prefix}/<int:pk>/delete/", rows.row_delete, extra, name=f"{kind}_delete"),
    ]


project_patterns = [
    path("", projects.project_overview, name="overview"),
    path("settings/", projects.project_settings, name="settings"),
    path("members/", members.members, name="members"),
    path("members/<int:pk>/role/", members.member_role, name="member_role"),
    path("members/<int:pk>/remove/", members.member_remove, name="member_remove"),
    path("systems/", inventory.inventory, name="inventory"),
    *row_urls("systems", "system"),
    *row_urls("connections", "connection"),
    path("steps/<int:number>/", steps.step, name="step"),
    path("steps/1/objective/", steps.objective_save, name="objective_save"),
    *row_urls("steps/1/criteria", "criterion"),
    *row_urls("steps/1/elements", "element"),
    path("steps/3/decision/", steps.decision_save, name="decision_save"),
    path("history/", history.history, name="history"),
    path(
        "history/<slug:model>/<int:object_id>/",
        history.history_object,
        name="history_object",
    ),
]

urlpatterns = [
    path("", projects.project_list, name="project_list"),
    path("projects/new/", projects.project_create, name="project_create"),
    path("projects/<int:project_id>/", include(project_patterns)),
]
