"""Django admin for tenants, principals, grants and tokens. Token secrets are never shown or stored."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from controlplane.identity import services
from controlplane.identity.models import ApiToken, Grant, Principal, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")


class GrantInline(admin.TabularInline):
    """Read-only here: grants change through GrantAdmin, which goes through the services (and the ledger)."""

    model = Grant
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "capability",
        "expires_at",
        "granted_by",
        "created_at",
        "revoked_at",
        "revoked_by",
    )

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Principal)
class PrincipalAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "kind", "user", "is_active", "created_at")
    list_filter = ("kind", "is_active", "tenant")
    search_fields = ("name",)
    inlines = [GrantInline]


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    """Adding grants and revoking them (delete) go through the services, so each change is ledgered."""

    list_display = ("principal", "capability", "expires_at", "granted_by", "revoked_at")
    list_filter = ("capability",)
    fields = ("principal", "capability", "expires_at")

    def has_change_permission(self, request: HttpRequest, obj: Grant | None = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Grant, form: object, change: bool) -> None:
        grant = services.grant_add(
            principal=obj.principal,
            capability=obj.capability,
            expires_at=obj.expires_at,
            actor=_actor(request),
        )
        obj.pk = grant.pk

    def delete_model(self, request: HttpRequest, obj: Grant) -> None:
        if obj.revoked_at is None:
            services.grant_revoke(principal=obj.principal, capability=obj.capability, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        for grant in queryset.filter(revoked_at__isnull=True):
            self.delete_model(request, grant)


def _actor(request: HttpRequest) -> str:
    principal = services.principal_for_user(request.user)
    return principal.ref if principal else f"user/{request.user.get_username()}"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "principal", "name", "created_at", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = ("prefix", "token_hash", "created_at", "last_used_at")
    list_filter = ("revoked_at",)

    def has_add_permission(self, request: object) -> bool:
        return False  # tokens are issued by `manage.py principals issue-token`, which shows the secret once
