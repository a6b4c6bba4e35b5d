"""Reads of identity for the API, the console and the CLI."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from controlplane.identity.models import Principal, Tenant
from controlplane.kernel.errors import ControlPlaneError


def tenant_get(*, slug: str) -> Tenant:
    """The tenant with this slug, or TENANT_NOT_FOUND."""
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise ControlPlaneError("TENANT_NOT_FOUND", f"no tenant {slug!r}")
    return tenant


def principal_get(*, tenant: Tenant, name: str) -> Principal:
    """The principal `name` of the tenant (tenant loaded), or PRINCIPAL_NOT_FOUND."""
    principal = Principal.objects.select_related("tenant").filter(tenant=tenant, name=name).first()
    if principal is None:
        raise ControlPlaneError("PRINCIPAL_NOT_FOUND", f"no principal {tenant.slug}/{name}")
    return principal


def principal_for_user(*, user: AbstractBaseUser | None) -> Principal | None:
    """The active principal a signed-in Django user acts as, or None."""
    if user is None or not user.is_authenticated:
        return None
    try:
        principal = user.principal
    except Principal.DoesNotExist:
        return None
    return principal if principal.is_active else None


def admin_holds(*, user: AbstractBaseUser | None, capability: str) -> bool:
    """Whether the admin user's principal holds `capability`: the Django admin shows (and allows) an add,
    change or action only to those the services would let do it, so the admin is no side door around a
    platform capability. The services check again (they are handed the principal, never a name)."""
    principal = principal_for_user(user=user)
    return principal is not None and principal.has_capability(capability)


def console_principal(*, user: AbstractBaseUser) -> tuple[Principal | None, frozenset[str]]:
    """The user's active principal (tenant loaded) and the capabilities it holds now, in two queries."""
    principal = Principal.objects.select_related("tenant").filter(user=user, is_active=True).first()
    if principal is None:
        return None, frozenset()
    held = principal.capabilities(timezone.now())
    principal.cache_capabilities(held)  # later checks in the request (scope, visibility) ask no query
    return principal, frozenset(held)
