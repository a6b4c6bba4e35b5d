"""Appending events to the ledger: the one way an event enters the chain.

`ledger_append` runs inside the caller's transaction, so a state change and its event commit together or
not at all. Appends are serialised by a transaction-scoped PostgreSQL advisory lock: the chain head is
read, the next event is hashed, signed and inserted, and the lock is released at commit. A rolled-back
transaction therefore leaves no gap.

Everything about an event that does not need the head is prepared before the lock (`ledger_prepare`);
`ledger_append_prepared` appends several prepared events under one lock, one head read and one INSERT.
Inside `ledger_deferred()` (batch.py) appends are deferred to the block's end. The
primitives are in chain.py, signing keys in keys.py, checkpoints in checkpoints.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from controlplane.ledger.batch import current_batch
from controlplane.ledger.chain import SOURCE, PreparedEvent, chain_append, chain_envelope, chain_prepare
from controlplane.ledger.models import Fidelity, LedgerEvent


def ledger_append(
    *,
    type: str,
    subject: str,
    data: dict[str, Any],
    actor: str = "system",
    tenant: str = "",
    time: datetime | None = None,
    source: str = SOURCE,
    causation_id: str = "",
    correlation_id: str = "",
    idempotency_key: str | None = None,
    fidelity: str = Fidelity.LIVE,
    reason_codes: list[str] | tuple[str, ...] = (),
    provenance: dict[str, Any] | None = None,
    event_id: str | None = None,
    traceparent: str | None = None,
) -> LedgerEvent:
    """Append one event to the chain inside the caller's transaction and return it.

    With an `idempotency_key` that is already on the chain, the existing event is returned and nothing
    is written. Any failure raises `ControlPlaneError` (LEDGER_WRITE_FAILED, LEDGER_KEY_UNAVAILABLE,
    LEDGER_NOT_CANONICAL) and, because the caller's transaction is rolled back, changes nothing.
    """
    prepared = ledger_prepare(
        type=type,
        subject=subject,
        data=data,
        actor=actor,
        tenant=tenant,
        time=time,
        source=source,
        causation_id=causation_id,
        correlation_id=correlation_id,
        idempotency_key=idempotency_key,
        fidelity=fidelity,
        reason_codes=reason_codes,
        provenance=provenance,
        event_id=event_id,
        traceparent=traceparent,
    )
    return ledger_append_prepared([prepared])[0]


def ledger_prepare(
    *,
    type: str,
    subject: str,
    data: dict[str, Any],
    actor: str = "system",
    tenant: str = "",
    time: datetime | None = None,
    source: str = SOURCE,
    causation_id: str = "",
    correlation_id: str = "",
    idempotency_key: str | None = None,
    fidelity: str = Fidelity.LIVE,
    reason_codes: list[str] | tuple[str, ...] = (),
    provenance: dict[str, Any] | None = None,
    event_id: str | None = None,
    traceparent: str | None = None,
) -> PreparedEvent:
    """Everything about an event that does not need the chain head (arguments as `ledger_append`).

    Runs in the caller's thread: the request id and trace context are taken from it. Raises
    LEDGER_NOT_CANONICAL for a payload that has no canonical form; nothing is locked or written.
    """
    return chain_prepare(
        chain_envelope(
            type=type,
            subject=subject,
            data=data,
            time=time,
            tenant=tenant,
            actor=actor,
            source=source,
            causation_id=causation_id,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            fidelity=fidelity,
            reason_codes=list(reason_codes),
            provenance=provenance or {},
            event_id=event_id,
            traceparent=traceparent,
        )
    )


def ledger_append_prepared(events: Sequence[PreparedEvent]) -> list[LedgerEvent]:
    """Append prepared events, in order, under one chain lock and one INSERT, inside the caller's
    transaction; return the event for each, in the same order.

    An event whose idempotency key is already on the chain (or earlier in `events`) is not written: the
    existing event is returned in its place, as `ledger_append` does. Failures raise `ControlPlaneError`
    (LEDGER_WRITE_FAILED, LEDGER_KEY_UNAVAILABLE) and, the caller's transaction being rolled back,
    change nothing. Inside `ledger_deferred()` (batch.py) nothing is locked or written yet: the events
    are deferred to the block's end and `DeferredEvent`s are returned (so `ledger_append` returns one).
    """
    if not events:
        return []
    batch = current_batch()
    if batch is not None:  # inside ledger_deferred(): appended with the batch when the block ends (batch.py)
        return batch.defer(events)
    return chain_append(events)
