"""Reads of identity for the API, the console and the CLI."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from controlplane.identity.models import Principal


def console_principal(*, user: AbstractBaseUser) -> tuple[Principal | None, frozenset[str]]:
    """The user's active principal (tenant loaded) and the capabilities it holds now, in two queries."""
    principal = Principal.objects.select_related("tenant").filter(user=user, is_active=True).first()
    if principal is None:
        return None, frozenset()
    return principal, frozenset(principal.capabilities(timezone.now()))
