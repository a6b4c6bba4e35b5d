"""The kill switch: engaging it holds every new dispatch (checked again by the worker before the effect).

Which switch covers a step is a read: `controlplane.runtime.selectors.killswitch_engaged_for`.

Who may turn which switch (checked here, so the API, the console and the CLI agree): a tenant principal
with `killswitch.manage` turns its own tenant's switch only; the global switch, action-wide switches and
other tenants' switches are installation-wide acts that need `platform.killswitch.manage`
(PLATFORM_SCOPE_REQUIRED). A string actor is the installation itself (a shell user) and is not checked.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.identity.scope import platform_authorize
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from controlplane.runtime.models import KillSwitch, KillSwitchScope

PLATFORM_KILLSWITCH = "platform.killswitch.manage"
TENANT_KILLSWITCH = "killswitch.manage"


def killswitch_authorize(*, actor: Principal | str, scope: str, target: str) -> None:
    """Refuse unless the actor may turn the switch (scope, target); no database write either way."""
    if not isinstance(actor, Principal):
        return
    if scope == KillSwitchScope.TENANT and target == actor.tenant.slug:
        if actor.has_capability(TENANT_KILLSWITCH) or actor.has_capability(PLATFORM_KILLSWITCH):
            return
        raise ControlPlaneError("CAPABILITY_MISSING", f"{actor.ref} lacks {TENANT_KILLSWITCH!r}")
    where = "another tenant's switch" if scope == KillSwitchScope.TENANT else f"the {scope} switch"
    platform_authorize(actor=actor, capability=PLATFORM_KILLSWITCH, detail=f"{where} is installation-wide")


@transaction.atomic
def killswitch_set(
    *,
    scope: str,
    target: str = "",
    engaged: bool,
    reason: str,
    actor: Principal | str,
    at: datetime | None = None,
) -> KillSwitch:
    """Engage or release a kill switch; every change is a ledgered, reasoned act.

    `actor` is the principal acting (its scope is checked: see the module) or, for the installation
    itself, a string naming it. A refusal writes nothing.
    """
    if scope not in KillSwitchScope.values:
        raise ControlPlaneError(
            "VALIDATION_FAILED", f"scope must be one of {', '.join(KillSwitchScope.values)}"
        )
    if (scope == KillSwitchScope.GLOBAL) != (target == ""):
        raise ControlPlaneError(
            "VALIDATION_FAILED", "a global switch has no target; tenant and action ones need one"
        )
    killswitch_authorize(actor=actor, scope=scope, target=target)
    if not reason or not reason.strip():
        raise ControlPlaneError(
            "KILL_SWITCH_REASON_REQUIRED", "engaging or releasing the kill switch needs a reason"
        )
    actor_ref = actor.ref if isinstance(actor, Principal) else actor
    at = at or timezone.now()
    switch, _ = KillSwitch.objects.select_for_update().update_or_create(
        scope=scope,
        target=target,
        defaults={"engaged": engaged, "reason": reason.strip(), "changed_by": actor_ref, "changed_at": at},
    )
    ledger_append(
        type="controlplane.killswitch.engaged" if engaged else "controlplane.killswitch.released",
        subject=f"killswitch/{scope}/{target or '*'}",
        data={"scope": scope, "target": target, "reason": reason.strip()},
        tenant=target if scope == KillSwitchScope.TENANT else "",
        actor=actor_ref,
        time=at,
        reason_codes=["KILL_SWITCH_ENGAGED"] if engaged else [],
    )
    return switch
