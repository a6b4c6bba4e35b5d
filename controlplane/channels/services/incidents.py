"""Incident notifications: incidents opened, escalated (severity raised) and resolved are posted to each
of the tenant's notifying connections (the ones approvals go to).

The incidents app knows nothing of channels, and its events are the authority: this relay reads the
ledger after its cursor (`ChannelCursor` "incidents"), as a log-tailing outbox relay does (Debezium's
outbox pattern), and writes one outbox row per (connection, event) — keyed by the event's id, so a relay
run twice posts nothing twice. Appends are serialised by the chain's lock until commit, so every seq up
to the highest committed one is final: the cursor never skips an event. A fresh installation starts at
the head (no history is replayed into chat). Runs from the outbox sweep (beat).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from controlplane.channels.models import ChannelCursor
from controlplane.channels.services.notifications import notifying_connections
from controlplane.channels.services.outbound import text_blocks
from controlplane.channels.services.outbox import channel_message_enqueue
from controlplane.identity.models import Tenant
from controlplane.ledger.models import LedgerEvent

INCIDENT_EVENTS = {
    "controlplane.incident.opened": "opened",
    "controlplane.incident.severity.raised": "escalated",
    "controlplane.incident.resolved": "resolved",
}
CURSOR = "incidents"
BATCH = 500


def incident_notification_text(verb: str, data: dict, incident: object | None) -> str:
    """What chat reads: the incident, what happened to it, and how to acknowledge it from chat."""
    incident_id = str(data.get("incident", ""))
    title = getattr(incident, "title", "") or str(data.get("title", ""))
    service = getattr(incident, "service", "") or str(data.get("service", ""))
    severity = getattr(incident, "severity", "") or str(data.get("severity", data.get("to", "")))
    line = f"Incident {verb}: {title} ({service}, {severity}) {incident_id[:12]}"
    if verb != "resolved":
        line += f"\nAcknowledge: /cp ack {incident_id[:12]}"
    return line


def incident_notifications_relay(*, limit: int = BATCH) -> int:
    """Queue a message per notifying connection for each incident event after the cursor; returns how
    many events were read."""
    from incidents.models import Incident  # a layer below: read only

    with transaction.atomic():
        head = LedgerEvent.objects.aggregate(head=Max("seq"))["head"] or 0
        cursor, created = ChannelCursor.objects.select_for_update().get_or_create(
            name=CURSOR, defaults={"seq": head}
        )
        if created:
            return 0
        events = list(
            LedgerEvent.objects.filter(seq__gt=cursor.seq, seq__lte=head, type__in=INCIDENT_EVENTS)
            .order_by("seq")
            .only("seq", "id", "type", "tenant", "data")[:limit]
        )
        tenants = dict(Tenant.objects.filter(slug__in={e.tenant for e in events}).values_list("slug", "pk"))
        incidents = Incident.objects.in_bulk([str(e.data.get("incident", "")) for e in events])
        for event in events:
            tenant_id = tenants.get(event.tenant)
            if tenant_id is None:
                continue
            verb = INCIDENT_EVENTS[event.type]
            text = incident_notification_text(verb, event.data, incidents.get(event.data.get("incident")))
            for connection in notifying_connections(tenant_id=tenant_id):
                channel_message_enqueue(
                    connection=connection,
                    key=f"incident.{verb}:{connection.pk}:{event.id}",
                    kind=f"incident.{verb}",
                    to=connection.channel,
                    payload={"text": text, "blocks": text_blocks(text)},
                )
        cursor.seq = events[-1].seq if len(events) == limit else head
        cursor.updated_at = timezone.now()
        cursor.save(update_fields=["seq", "updated_at"])
        return len(events)
