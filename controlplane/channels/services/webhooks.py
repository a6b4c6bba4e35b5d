"""Inbound webhook deliveries: a verified delivery handed to its adapter (controlplane.kernel.webhooks),
once per delivery id.

A delivery the provider names (`adapter.delivery_id`) is accepted once: the adapter's writes and a
`controlplane.channels.webhook.received` event, whose idempotency key is the delivery's, commit together
or not at all. A repeat — a retry of a delivery that was in fact accepted, or a concurrent twin — is
refused with DUPLICATE_EVENT naming the original seq and writes nothing. A delivery without an id is
the domain's to deduplicate (Alertmanager's and Grafana's alerts are, by content hash) and leaves no
receipt.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.webhooks import WebhookAdapter
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append

RECEIVED_EVENT = "controlplane.channels.webhook.received"
_MAX_PLAIN_ID = 128  # longer delivery ids go into the idempotency key (255 characters) as a SHA-256


def webhook_idempotency_key(*, adapter: str, tenant_id: int, delivery_id: str) -> str:
    """The ledger idempotency key of one delivery: per adapter and tenant, the provider's id."""
    if len(delivery_id) > _MAX_PLAIN_ID:
        delivery_id = "sha256:" + hashlib.sha256(delivery_id.encode()).hexdigest()
    return f"webhook:{adapter}:{tenant_id}:{delivery_id}"


def _duplicate(seq: int, code: str = "DUPLICATE_EVENT") -> ControlPlaneError:
    return ControlPlaneError(
        code,
        f"a delivery with this id was already accepted as seq {seq}",
        extra={"seq": seq, "duplicate_of": "delivery id"},
    )


def webhook_delivery_accept(
    *, adapter: WebhookAdapter, request: HttpRequest, principal: Principal, delivery_id: str | None
) -> dict[str, Any]:
    """Hand one verified delivery to `adapter.accept` and return its answer's body.

    With a `delivery_id`, in one transaction with the receipt event, and refused with DUPLICATE_EVENT
    (writing nothing) when that id was accepted before; the receipt is appended after `accept`, so the
    lock order of the adapter's own writes (e.g. detection locks before the chain's) is kept.
    """
    if delivery_id is None:
        return adapter.accept(request, principal)
    key = webhook_idempotency_key(
        adapter=adapter.name, tenant_id=principal.tenant_id, delivery_id=delivery_id
    )
    earlier = LedgerEvent.objects.filter(idempotency_key=key).values_list("seq", flat=True).first()
    duplicate_code = getattr(adapter, "duplicate_code", "DUPLICATE_EVENT")  # channels say their own
    if earlier is not None:  # a retry: refused before the adapter does any work
        raise _duplicate(earlier, duplicate_code)
    event_id = uuid.uuid4().hex
    with transaction.atomic():
        body = adapter.accept(request, principal)
        receipt = ledger_append(
            type=RECEIVED_EVENT,
            subject=f"webhook/{adapter.name}",
            data={"adapter": adapter.name, "delivery_id": delivery_id},
            tenant=principal.tenant.slug,
            actor=principal.ref,
            idempotency_key=key,
            event_id=event_id,
        )
        if receipt.id != event_id:  # a concurrent twin committed first: undo what accept wrote
            raise _duplicate(receipt.seq, duplicate_code)
    return body
