"""Every write of the channels app, by sub-domain; import the names from here.

- producers:  `producer_create`, `producer_get`, `producer_key_rotate`, `producer_key_revoke`
- ingest:     `event_check`, `signature_verdict`, `event_ingest`, `deliveries_append` and its pipelined
              forms (the serving paths of `POST /api/v1/events/` live in controlplane.channels.ingest)
- rejections: `rejection_record`, `rejection_flush`, `rejection_key` (the ingest refusal counters),
              `webhook_rejection_record` (the webhook view's)
- webhooks:   `webhook_delivery_accept` (a verified delivery to its adapter, once per delivery id)
"""

from __future__ import annotations

from controlplane.channels.services.ingest import (
    SIGNING_MODES,
    Accepted,
    CheckedDelivery,
    Outcome,
    SignatureVerdict,
    deliveries_append,
    deliveries_append_pipelined,
    deliveries_append_pipelined_async,
    event_check,
    event_ingest,
    events_batch_check,
    signature_verdict,
)
from controlplane.channels.services.producers import (
    DEFAULT_OVERLAP_SECONDS,
    INGEST_CAPABILITY,
    CreatedProducer,
    RotatedKey,
    principal_name_for,
    producer_create,
    producer_get,
    producer_key_revoke,
    producer_key_rotate,
)
from controlplane.channels.services.rejections import (
    REJECTION_CODES,
    UNKNOWN_PRODUCER,
    rejection_flush,
    rejection_key,
    rejection_record,
    webhook_rejection_key,
    webhook_rejection_record,
)
from controlplane.channels.services.webhooks import webhook_delivery_accept, webhook_idempotency_key

__all__ = [
    "DEFAULT_OVERLAP_SECONDS",
    "INGEST_CAPABILITY",
    "REJECTION_CODES",
    "SIGNING_MODES",
    "UNKNOWN_PRODUCER",
    "Accepted",
    "CheckedDelivery",
    "CreatedProducer",
    "Outcome",
    "RotatedKey",
    "SignatureVerdict",
    "deliveries_append",
    "deliveries_append_pipelined",
    "deliveries_append_pipelined_async",
    "event_check",
    "event_ingest",
    "events_batch_check",
    "principal_name_for",
    "producer_create",
    "producer_get",
    "producer_key_revoke",
    "producer_key_rotate",
    "rejection_flush",
    "rejection_key",
    "rejection_record",
    "signature_verdict",
    "webhook_delivery_accept",
    "webhook_idempotency_key",
    "webhook_rejection_key",
    "webhook_rejection_record",
]
