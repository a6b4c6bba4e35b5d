"""CloudEvents of type `io.controlplane.signal` become signals.

The channels ingest (signed CloudEvents, `POST /api/v1/events/`) checks the event with
`signal_cloudevent_normalise` before writing anything, appends it, then calls `signal_ingest` in the same
transaction: the event's `data` is the generic signal
shape (`incidents.normalise.from_generic`), its `source` defaults to the CloudEvent's `source`. A data
payload that cannot be normalised refuses the whole delivery (SIGNAL_INVALID, the field at fault,
nothing written); so does a producer whose principal lacks `signals.ingest` (CAPABILITY_MISSING).
"""

from __future__ import annotations

from typing import Any

from controlplane.identity.models import Principal, Tenant
from controlplane.kernel.errors import ControlPlaneError
from incidents.normalise import NormalisedSignal, from_generic
from incidents.services.signals import IngestResult, signal_ingest

SIGNAL_CLOUDEVENT_TYPE = "io.controlplane.signal"
INGEST_CAPABILITY = "signals.ingest"


def signal_cloudevent_normalise(*, principal: Principal, ce_source: str, data: Any) -> NormalisedSignal:
    """Check a signal CloudEvent before anything is written: the producer may send signals, and its data
    normalises (SIGNAL_INVALID naming `data.<field>` otherwise)."""
    if not principal.has_capability(INGEST_CAPABILITY):
        raise ControlPlaneError(
            "CAPABILITY_MISSING",
            f"{principal.ref} lacks {INGEST_CAPABILITY!r} for {SIGNAL_CLOUDEVENT_TYPE} events",
        )
    payload = dict(data) if isinstance(data, dict) else data
    if isinstance(payload, dict):
        payload.setdefault("source", ce_source)
    return from_generic(payload, source_kind="cloudevents", at="data")


def signal_ingest_cloudevent(
    *, tenant: Tenant, principal: Principal, ce_source: str, data: Any, causation_id: str
) -> IngestResult:
    """Normalise and ingest in one go (the caller's transaction holds the CloudEvent's own append)."""
    signal = signal_cloudevent_normalise(principal=principal, ce_source=ce_source, data=data)
    return signal_ingest(tenant=tenant, signals=[signal], actor=principal.ref, causation_id=causation_id)
