"""The kill switch: engaging it holds every new dispatch (checked again by the worker before the effect).

Which switch covers a step is a read: `controlplane.runtime.selectors.killswitch_engaged_for`.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from controlplane.runtime.models import KillSwitch, KillSwitchScope


@transaction.atomic
def killswitch_set(
    *, scope: str, target: str = "", engaged: bool, reason: str, actor: str, at: datetime | None = None
) -> KillSwitch:
    """Engage or release a kill switch; every change is a ledgered, reasoned act."""
    if scope not in KillSwitchScope.values:
        raise ControlPlaneError(
            "VALIDATION_FAILED", f"scope must be one of {', '.join(KillSwitchScope.values)}"
        )
    if (scope == KillSwitchScope.GLOBAL) != (target == ""):
        raise ControlPlaneError(
            "VALIDATION_FAILED", "a global switch has no target; tenant and action ones need one"
        )
    if not reason or not reason.strip():
        raise ControlPlaneError(
            "KILL_SWITCH_REASON_REQUIRED", "engaging or releasing the kill switch needs a reason"
        )
    at = at or timezone.now()
    switch, _ = KillSwitch.objects.select_for_update().update_or_create(
        scope=scope,
        target=target,
        defaults={"engaged": engaged, "reason": reason.strip(), "changed_by": actor, "changed_at": at},
    )
    ledger_append(
        type="controlplane.killswitch.engaged" if engaged else "controlplane.killswitch.released",
        subject=f"killswitch/{scope}/{target or '*'}",
        data={"scope": scope, "target": target, "reason": reason.strip()},
        tenant=target if scope == KillSwitchScope.TENANT else "",
        actor=actor,
        time=at,
        reason_codes=["KILL_SWITCH_ENGAGED"] if engaged else [],
    )
    return switch
