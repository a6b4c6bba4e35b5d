"""What every incidents service shares: ledger appends, actor checks, the clock-free time format."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from controlplane.errors import ControlPlaneError
from controlplane.identity.models import Principal, PrincipalKind
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from incidents.normalise import format_time

__all__ = ["actor_ref", "append", "format_time", "require_human", "require_reason"]


def actor_ref(actor: Principal | str | None) -> str:
    if actor is None:
        return "system"
    return actor if isinstance(actor, str) else actor.ref


def append(
    type_: str,
    *,
    subject: str,
    data: dict[str, Any],
    tenant: str,
    actor: str,
    at: datetime,
    codes: list[str] | tuple[str, ...] = (),
    causation_id: str = "",
    correlation_id: str = "",
    idempotency_key: str | None = None,
    event_id: str | None = None,
) -> LedgerEvent:
    return ledger_append(
        type=type_,
        subject=subject,
        data=data,
        tenant=tenant,
        actor=actor,
        time=at,
        reason_codes=list(codes),
        causation_id=causation_id,
        correlation_id=correlation_id,
        idempotency_key=idempotency_key,
        event_id=event_id,
    )


def require_human(actor: Principal, *, tenant_id: int, what: str) -> None:
    """People act on incidents and silences; agents, services and tools only send signals."""
    if actor.tenant_id != tenant_id:
        raise ControlPlaneError("NOT_FOUND", f"no such {what} in your tenant")
    if actor.kind != PrincipalKind.HUMAN:
        raise ControlPlaneError(
            "INCIDENT_ACTOR_NOT_HUMAN", f"{actor.ref} is a {actor.kind}; only people {what}"
        )


def require_reason(reason: str | None, what: str) -> str:
    if not reason or not reason.strip():
        raise ControlPlaneError("INCIDENT_REASON_REQUIRED", f"{what} needs a reason")
    return reason.strip()
