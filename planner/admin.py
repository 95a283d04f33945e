from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from .models import (
    GoLive,
    GoLiveRevert,
    IntegrationProject,
    Membership,
    SignOff,
    SignOffStale,
    System,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(IntegrationProject)
class IntegrationProjectAdmin(SimpleHistoryAdmin):
    list_display = ("name", "owner", "created_at")
    search_fields = ("name",)
    inlines = [MembershipInline]


@admin.register(System)
class SystemAdmin(SimpleHistoryAdmin):
    list_display = ("name", "kind", "project")
    list_filter = ("kind",)


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
