"""Chat commands (Slack's slash command, `/cp` by default): what a linked person may read or do from chat,
with the capabilities the console and the API demand.

    /cp approvals                      the tenant's pending approvals      (approvals.read)
    /cp incident <id-prefix>           one incident: status, severity, service, times (incidents.read)
    /cp ack <id-prefix>                `incident acknowledge` as the linked person (incidents.manage)
    /cp approve|reject <id> <hash> <reason>   as in every channel (approvals.decide)
    /cp link <code>                    finish linking this chat identity

An unlinked identity reads nothing and decides nothing (CHANNEL_IDENTITY_UNLINKED). Text typed in chat
is untrusted: it is parsed, never interpolated into a query, and what goes back is escaped by the sender.
"""

from __future__ import annotations

import re
from typing import Any

from controlplane.channels.models import ChannelConnection
from controlplane.channels.services.messages import (
    MIN_PREFIX,
    approval_action_parse,
    channel_message_receive,
    linked_principal,
    pending_approvals,
)
from controlplane.kernel.errors import ControlPlaneError
from incidents.models import Incident
from incidents.services import incident_acknowledge

_INCIDENT = re.compile(r"^\s*(?P<verb>incident|ack)\s+(?P<id>[0-9a-fA-F]+)\s*$", re.IGNORECASE)
USAGE = "usage: approvals | incident ID | ack ID | approve|reject ID HASH REASON | link CODE"


def _incident_by_prefix(connection: ChannelConnection, prefix: str) -> Incident:
    if len(prefix) < MIN_PREFIX:
        raise ControlPlaneError(
            "CHANNEL_COMMAND_INVALID", f"name the incident by {MIN_PREFIX}+ hex characters"
        )
    found = list(Incident.objects.filter(tenant=connection.tenant, id__startswith=prefix.lower())[:2])
    if not found:
        raise ControlPlaneError("INCIDENT_NOT_FOUND", f"no incident {prefix}… in this tenant")
    if len(found) > 1:
        raise ControlPlaneError("CHANNEL_COMMAND_INVALID", f"{prefix}… names more than one incident")
    return found[0]


def incident_line(incident: Incident) -> str:
    return (
        f"{incident.id[:12]} {incident.status} {incident.severity} {incident.service}: {incident.title} "
        f"(opened {incident.opened_at:%Y-%m-%d %H:%M} UTC)"
    )


def channel_command_run(
    *, connection: ChannelConnection, sender: str, text: str, delivery_id: str, kind: str
) -> dict[str, Any]:
    """Run one chat command and record it (one `message.received` event, with the outcome's code).

    Returns the outcome with a `reply` for the person (ephemeral in Slack).
    """
    text = (text or "").strip()
    words = text.split()
    verb = words[0].lower() if words else "approvals"

    def listing() -> dict[str, Any]:
        lines = [
            f"{a.id[:12]} {a.content_hash[:12]} {a.risk_tier} {a.subject_kind}"
            for a in pending_approvals(connection=connection, sender=sender)
        ]
        return {"reply": "\n".join(lines) or "nothing pending"}

    def incident_command(verb: str, prefix: str) -> dict[str, Any]:
        capability = "incidents.manage" if verb == "ack" else "incidents.read"
        person = linked_principal(connection=connection, sender=sender, capability=capability)
        incident = _incident_by_prefix(connection, prefix)
        if verb == "ack":
            incident = incident_acknowledge(incident=incident, actor=person, reason="acknowledged from chat")
        return {"incident": incident.id, "status": incident.status, "reply": incident_line(incident)}

    base = {
        "connection": connection,
        "sender": sender,
        "text": text,
        "delivery_id": delivery_id,
        "kind": kind,
    }
    match = _INCIDENT.match(text)
    if verb == "approvals" and len(words) <= 1:
        outcome = channel_message_receive(**base, command=("approvals", listing))
    elif match is not None:
        outcome = channel_message_receive(
            **base,
            command=(match["verb"].lower(), lambda: incident_command(match["verb"].lower(), match["id"])),
        )
    else:
        outcome = channel_message_receive(**base, action=approval_action_parse(text))
        if "action" not in outcome:
            outcome = {**outcome, "ok": False, "code": "CHANNEL_COMMAND_INVALID", "detail": USAGE}
        elif outcome.get("ok"):
            outcome["reply"] = (
                f"linked to {outcome['linked']}"
                if "linked" in outcome
                else f"the approval is {outcome['status']}"
            )
    if not outcome.get("ok"):
        outcome["reply"] = f"{outcome.get('code')}: {outcome.get('detail', '')}"
    return outcome
