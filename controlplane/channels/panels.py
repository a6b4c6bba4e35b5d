"""What the channels app shows on other apps' pages (kernel.navigation.register_detail_panel)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from controlplane.channels.selectors import changes_before


def incident_changes(request: HttpRequest, incident: Any) -> dict[str, Any]:
    """The incident page's "changes before this incident": the tenant's change signals of the window."""
    return {
        "incident": incident,
        "changes": changes_before(
            tenant_id=incident.tenant_id, until=incident.opened_at, service=incident.service
        ),
        "window_minutes": settings.CONTROLPLANE_CHANGE_WINDOW_SECONDS // 60,
    }
