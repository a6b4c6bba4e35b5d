"""Reads of the runtime for the services, the API, the console and the CLI."""

from __future__ import annotations

from controlplane.runtime.models import KillSwitch, KillSwitchScope

# --- Runtime reads -------------------------------------------------------------------------------------


def killswitch_covers(*, scope: str, target: str, tenant: str, action: str) -> bool:
    """Does a switch of this scope and target cover a step of this tenant and action? Pure: the runtime
    judges a dispatch with it, and replay judges every recorded dispatch again with the same function."""
    return (
        scope == KillSwitchScope.GLOBAL
        or (scope == KillSwitchScope.TENANT and target == tenant)
        or (scope == KillSwitchScope.ACTION and target == action)
    )


def killswitch_engaged_for(*, tenant: str, action: str) -> KillSwitch | None:
    """The engaged switch that covers this tenant and action, if any. Read fresh each time (no cache).

    Engaged switches are few (an operator's emergency brake), so all of them are read and judged by
    `killswitch_covers`, in scope order as before.
    """
    for switch in KillSwitch.objects.filter(engaged=True).order_by("scope"):
        if killswitch_covers(scope=switch.scope, target=switch.target, tenant=tenant, action=action):
            return switch
    return None
