"""Context every page gets: the environment badge, the signed-in principal and what it may do."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from controlplane.identity.selectors import principal_for_user


def console(request: HttpRequest) -> dict[str, Any]:
    # A console view guarded by `capability_required` has already read the principal; reuse it.
    if hasattr(request, "console_principal"):
        principal = request.console_principal
        capabilities = request.console_capabilities
    else:
        user = getattr(request, "user", None)
        principal = principal_for_user(user=user) if user is not None else None
        capabilities = frozenset()
    return {
        "cp_env": settings.CONTROLPLANE_ENV,
        "cp_principal": principal,
        "cp_capabilities": capabilities,
    }
