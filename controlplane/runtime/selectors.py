"""Reads of the runtime for the services, the API, the console and the CLI."""

from __future__ import annotations

from django.db.models import Q

from controlplane.runtime.models import KillSwitch, KillSwitchScope

# --- Runtime reads -------------------------------------------------------------------------------------


def killswitch_engaged_for(*, tenant: str, action: str) -> KillSwitch | None:
    """The engaged switch that covers this tenant and action, if any. Read fresh each time (no cache)."""
    return (
        KillSwitch.objects.filter(engaged=True)
        .filter(
            Q(scope=KillSwitchScope.GLOBAL)
            | Q(scope=KillSwitchScope.TENANT, target=tenant)
            | Q(scope=KillSwitchScope.ACTION, target=action)
        )
        .order_by("scope")
        .first()
    )
