"""Plugins in Django admin: read-mostly. Registration, quarantine, review decisions and release go through
the services (API, console, `manage.py plugins ...`), which check scope, ledger and decide from evidence."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from plugins.models import Plugin, PluginProvision, ReviewItem


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ProvisionInline(admin.TabularInline):
    model = PluginProvision
    extra = 0
    can_delete = False
    fields = readonly_fields = ("kind", "name")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Plugin)
class PluginAdmin(ReadOnlyAdmin):
    list_display = ("name", "tenant", "kind", "version", "state", "state_since", "last_heartbeat_at")
    list_filter = ("state", "kind", "tenant")
    search_fields = ("name",)
    inlines = [ProvisionInline]
    exclude = ("digest_hash",)


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = ("pk", "plugin", "code", "severity", "status", "opened_at", "decided_by")
    list_filter = ("status", "code")
