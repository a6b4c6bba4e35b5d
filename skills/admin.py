"""Skills in Django admin: read-only until the signed-skills issue adds install/verify/disable flows."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from skills.models import ActionContract, Skill


class ActionInline(admin.TabularInline):
    model = ActionContract
    extra = 0
    can_delete = False
    fields = readonly_fields = ("name", "version", "risk_tier", "executor")


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "publisher", "trusted", "status", "installed_at")
    # Every field read-only, `status` included: a skill is disabled or enabled through its service (ledgered).
    readonly_fields = (
        "name",
        "version",
        "publisher",
        "trusted",
        "status",
        "manifest",
        "manifest_hash",
        "installed_at",
    )
    inlines = [ActionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ActionContract)
class ActionContractAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "risk_tier", "executor", "skill")
    list_filter = ("risk_tier",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
