from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from .models import IntegrationProject, Membership, System


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
