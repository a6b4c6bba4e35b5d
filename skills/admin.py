"""Skills and the publisher trust store in Django admin: read-only. Every change goes through the services
(`manage.py skills ...`, the API), which verify, ledger and re-check installed skills."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from skills.models import ActionContract, Publisher, PublisherKey, Skill


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ActionInline(admin.TabularInline):
    model = ActionContract
    extra = 0
    can_delete = False
    fields = readonly_fields = ("name", "version", "risk_tier", "executor")


@admin.register(Skill)
class SkillAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "publisher", "trusted", "status", "installed_at", "installed_by")
    list_filter = ("status", "publisher")
    inlines = [ActionInline]


@admin.register(ActionContract)
class ActionContractAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "risk_tier", "executor", "skill")
    list_filter = ("risk_tier",)


class KeyInline(admin.TabularInline):
    model = PublisherKey
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "key_id",
        "scheme",
        "valid_from",
        "valid_until",
        "revoked_at",
        "revoked_reason",
    )


@admin.register(Publisher)
class PublisherAdmin(ReadOnlyAdmin):
    list_display = ("name", "threshold", "builtin", "created_at")
    inlines = [KeyInline]


@admin.register(PublisherKey)
class PublisherKeyAdmin(ReadOnlyAdmin):
    list_display = ("key_id", "publisher", "scheme", "valid_from", "valid_until", "revoked_at")
    list_filter = ("publisher",)
