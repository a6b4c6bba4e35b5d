"""Who is on an incident, and what people wrote on it: the assignee and notes (PagerDuty's and Grafana
OnCall's basics). Both are acts of people of the incident's tenant, each one row change and one ledger
event in the same transaction; a refusal carries its reason code and writes nothing.

- `incident_assign`: a person of the tenant who may manage incidents (`incidents.manage`), or nobody.
  Assigning to whoever holds it already is INCIDENT_ASSIGNEE_UNCHANGED (so a double click writes one
  event); a closed incident does not change (INCIDENT_TRANSITION_NOT_ALLOWED).
- `incident_note_add`: a timeline entry by a person; notes are allowed on every state, closed included
  (the post-incident review writes them).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from controlplane.identity.models import Principal, PrincipalKind
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from incidents.models import NOTE_MAX_LENGTH, Incident, IncidentNote, IncidentStatus
from incidents.services.common import format_time, require_human

MANAGE_CAPABILITY = "incidents.manage"


def _lock(incident: Incident) -> Incident:
    # Only the incident's row is locked (`of=("self",)`): the assignee is a nullable join.
    return (
        Incident.objects.select_for_update(of=("self",))
        .select_related("tenant", "assignee__tenant")
        .get(pk=incident.pk)
    )


def _ref(principal: Principal | None) -> str | None:
    return principal.ref if principal is not None else None


@transaction.atomic
def incident_assign(
    *,
    incident: Incident,
    actor: Principal,
    assignee: Principal | None,
    reason: str = "",
    at: datetime | None = None,
) -> Incident:
    """Give the incident to `assignee` (None: to nobody). The actor and the assignee are people of the
    incident's tenant; the assignee may manage incidents (they will acknowledge and resolve it)."""
    incident = _lock(incident)
    require_human(actor, tenant_id=incident.tenant_id, what="assign incidents")
    if assignee is not None and (
        assignee.tenant_id != incident.tenant_id
        or assignee.kind != PrincipalKind.HUMAN
        or not assignee.is_active
        or not assignee.has_capability(MANAGE_CAPABILITY)
    ):
        raise ControlPlaneError(
            "INCIDENT_ASSIGNEE_INVALID",
            f"{assignee.name!r} is not a person of this tenant who may manage incidents",
        )
    if incident.status == IncidentStatus.CLOSED:
        raise ControlPlaneError(
            "INCIDENT_TRANSITION_NOT_ALLOWED",
            "a closed incident does not change",
            extra={"status": incident.status},
        )
    if (assignee.pk if assignee else None) == incident.assignee_id:
        raise ControlPlaneError(
            "INCIDENT_ASSIGNEE_UNCHANGED",
            f"the incident is assigned to {_ref(assignee) or 'nobody'} already",
        )
    at = at or timezone.now()
    previous = incident.assignee
    incident.assignee = assignee
    incident.assigned_at = at if assignee is not None else None
    incident.updated_at = at
    incident.save(update_fields=["assignee", "assigned_at", "updated_at"])
    ledger_append(
        type="controlplane.incident.assigned",
        subject=f"incident/{incident.id}",
        data={
            "incident": incident.id,
            "assignee": _ref(assignee),
            "previous": _ref(previous),
            "reason": (reason or "").strip(),
            "at": format_time(at),
        },
        tenant=incident.tenant.slug,
        actor=actor.ref,
        time=at,
        correlation_id=incident.id,
    )
    return incident


@transaction.atomic
def incident_note_add(
    *, incident: Incident, actor: Principal, text: str, at: datetime | None = None
) -> IncidentNote:
    """Add a person's note to the incident's timeline."""
    incident = _lock(incident)
    require_human(actor, tenant_id=incident.tenant_id, what="write notes on incidents")
    text = (text or "").strip()
    if not text:
        raise ControlPlaneError("INCIDENT_NOTE_EMPTY", "a note needs some text")
    if len(text) > NOTE_MAX_LENGTH:
        raise ControlPlaneError(
            "INCIDENT_NOTE_TOO_LONG", f"a note is at most {NOTE_MAX_LENGTH} characters, not {len(text)}"
        )
    at = at or timezone.now()
    event = ledger_append(
        type="controlplane.incident.note.added",
        subject=f"incident/{incident.id}",
        data={"incident": incident.id, "author": actor.ref, "text": text, "at": format_time(at)},
        tenant=incident.tenant.slug,
        actor=actor.ref,
        time=at,
        correlation_id=incident.id,
    )
    incident.updated_at = at
    incident.save(update_fields=["updated_at"])
    return IncidentNote.objects.create(
        incident=incident, tenant=incident.tenant, author=actor, text=text, created_at=at, seq=event.seq
    )
