"""Django admin for tenants, principals, grants, tokens and Django users. Token secrets are never shown
or stored; every change goes through a service that ledgers it (user changes included, without secrets)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from controlplane.identity import selectors, services
from controlplane.identity.models import ApiToken, Grant, Principal, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")
    fields = ("slug", "name")

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> tuple[str, ...]:
        return ("slug",) if obj else ()

    def save_model(self, request: HttpRequest, obj: Tenant, form: object, change: bool) -> None:
        if change:
            services.tenant_update(tenant=obj, name=obj.name, actor=_actor(request))
            return
        obj.pk = services.tenant_create(slug=obj.slug, name=obj.name, actor=_actor(request)).pk

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False  # a tenant's history stays on the chain; there is no unledgered delete


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
    """Creation and (de)activation go through the services, so both are ledgered."""

    list_display = ("name", "tenant", "kind", "user", "is_active", "created_at")
    list_filter = ("kind", "is_active", "tenant")
    search_fields = ("name",)
    fields = ("tenant", "name", "kind", "user", "is_active")
    inlines = [GrantInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Principal | None = None) -> tuple[str, ...]:
        return ("tenant", "name", "kind", "user") if obj else ("is_active",)

    def save_model(self, request: HttpRequest, obj: Principal, form: object, change: bool) -> None:
        if change:
            services.principal_set_active(principal=obj, is_active=obj.is_active, actor=_actor(request))
            return
        created = services.principal_create(
            tenant=obj.tenant, name=obj.name, kind=obj.kind, user=obj.user, actor=_actor(request)
        )
        obj.pk = created.pk


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
    principal = selectors.principal_for_user(user=request.user)
    return principal.ref if principal else f"user/{request.user.get_username()}"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by `manage.py principals issue-token` (the secret is shown once); here they are
    listed and revoked (through the service, so revocation is ledgered)."""

    list_display = ("prefix", "principal", "name", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at",)
    actions = ["revoke_tokens"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    @admin.action(description="Revoke selected tokens", permissions=["view"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset.filter(revoked_at__isnull=True):
            services.token_revoke(prefix=token.prefix, actor=_actor(request))


User = get_user_model()
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Django users, each change ledgered as `controlplane.identity.user.changed` (field names and flag
    values; for the password, only that it changed). Users are never deleted here (deactivate them)."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        changed = list(form.changed_data)
        if not change:
            changed = [name for name in changed if name not in ("password1", "password2")] + ["password"]
        services.user_change_record(user=obj, changed=changed, created=not change, actor=_actor(request))

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                user = self.get_object(request, id)
                services.user_change_record(user=user, changed=["password"], actor=_actor(request))
        return response


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Read-only: permissions come from capability grants (ledgered), not from Django groups."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
