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
    return nav_items(capabilities=capabilities, current=match.view_name if match else "")


def nav_items(
    *, capabilities: frozenset[str], current: str, counts: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """The top bar's links a viewer holding `capabilities` sees; with `counts` (the badges' fragment,
    `/nav/`), each counting entry carries its count. Pages render the bar without counts, so a page costs
    no extra query: the bar fetches its badges by htmx once loaded, then every 30 seconds."""
    items = []
    for entry in navigation.nav_entries(capabilities=capabilities):
        item = {"label": entry.label, "href": reverse(entry.url_name), "current": current in entry.current}
        if counts is not None and entry.url_name in counts:
            item["count"] = counts[entry.url_name]
            item["count_label"] = entry.count_label
        items.append(item)
    return items
