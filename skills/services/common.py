"""What the skills services share: the ledger source, the actor, reasons, the platform check."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import F

from controlplane.identity.models import Principal
from controlplane.identity.scope import platform_authorize
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from skills.capabilities import MANAGE
from skills.models import (
    TrustRevision,
)

SOURCE = "/controlplane/skills"
INSTALL_SUBJECT = "skills.install"


def _authorize(actor: Principal | str, detail: str) -> None:
    """Skills and the trust store are installation-wide: a person needs the platform capability."""
    platform_authorize(actor=actor, capability=MANAGE, detail=detail)


def _actor(actor: Principal | str) -> str:
    return actor.ref if isinstance(actor, Principal) else str(actor)


def _reason_required(reason: str) -> None:
    if not reason or not reason.strip():
        raise ControlPlaneError("SKILL_REASON_REQUIRED", "give a reason")


def trust_revision_bump() -> int:
    """Bump the trust store's revision (inside the caller's transaction) and return the new one."""
    row, _ = TrustRevision.objects.select_for_update().get_or_create(pk=1)
    TrustRevision.objects.filter(pk=1).update(revision=F("revision") + 1)
    return row.revision + 1


def _append(type_: str, subject: str, data: dict[str, Any], actor: str, at: datetime, codes=()) -> None:
    ledger_append(
        type=f"controlplane.{type_}",
        subject=subject,
        data=data,
        actor=actor,
        time=at,
        source=SOURCE,
        reason_codes=list(codes),
    )
