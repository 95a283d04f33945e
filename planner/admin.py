from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from planner.checklist.standing import after_write

from .models import (
    GoLive,
    GoLiveRevert,
    IntegrationProject,
    Membership,
    SignOff,
    SignOffStale,
    System,
)


class RecordsTheWrite:
    """An admin edit is a write to a project like any other: afterwards the steps' hashes are
    stored and stale sign-offs recorded, as after every write of the app's pages. Deleting a
    system deletes its connections and their mapping; a history revert saves through
    `save_model` too."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        after_write(self.project_of(obj))

    def delete_model(self, request, obj):
        project = self.project_of(obj)
        super().delete_model(request, obj)
        if IntegrationProject.objects.filter(pk=project.pk).exists():
            after_write(project)

    def delete_queryset(self, request, queryset):
        projects = {self.project_of(obj).pk: self.project_of(obj) for obj in queryset}
        super().delete_queryset(request, queryset)
        for project in IntegrationProject.objects.filter(pk__in=list(projects)):
            after_write(project)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(IntegrationProject)
class IntegrationProjectAdmin(RecordsTheWrite, SimpleHistoryAdmin):
    list_display = ("name", "owner", "created_at")
    search_fields = ("name",)
    inlines = [MembershipInline]

    @staticmethod
    def project_of(obj: IntegrationProject) -> IntegrationProject:
        return obj


@admin.register(System)
class SystemAdmin(RecordsTheWrite, SimpleHistoryAdmin):
    list_display = ("name", "kind", "project")
    list_filter = ("kind",)

    @staticmethod
    def project_of(obj: System) -> IntegrationProject:
        return obj.project


class ReadOnlyAdmin(admin.ModelAdmin):
    """Sign-offs, their stale events and go-live events are an audit trail: visible, never
    changed here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SignOff)
class SignOffAdmin(ReadOnlyAdmin):
    list_display = ("project", "step", "user", "role", "decision", "content_hash", "created_at")
    list_filter = ("decision", "step")


@admin.register(SignOffStale)
class SignOffStaleAdmin(ReadOnlyAdmin):
    list_display = ("project", "step", "signoff", "current_hash", "detected_at")


@admin.register(GoLive)
class GoLiveAdmin(ReadOnlyAdmin):
    list_display = ("project", "user", "created_at")


@admin.register(GoLiveRevert)
class GoLiveRevertAdmin(ReadOnlyAdmin):
    list_display = ("project", "user", "reason", "created_at")
