"""Context every page gets: the environment badge, the signed-in principal, what it may do, and the
navigation the apps registered (`controlplane.kernel.navigation`) that it may see."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from controlplane.identity.selectors import principal_for_user
from controlplane.kernel import navigation


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
        "cp_nav": _nav(request, capabilities),
    }


def _nav(request: HttpRequest, capabilities: frozenset[str]) -> list[dict[str, Any]]:
    match = getattr(request, "resolver_match", None)
    current = match.view_name if match else ""
    return [
        {"label": entry.label, "href": reverse(entry.url_name), "current": current in entry.current}
        for entry in navigation.nav_entries(capabilities=capabilities)
    ]
