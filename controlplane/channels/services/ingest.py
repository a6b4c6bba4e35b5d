"""Signed CloudEvents ingest: verify a delivery, check its event, append it with its `Delivery` row.

`event_check` verifies a Standard Webhooks signature over the raw body according to the signing mode and
checks the CloudEvent, writing nothing; `deliveries_append` (and its pipelined forms, for the group
commits of controlplane.channels.ingest) appends checked deliveries; `event_ingest` is the two in one.
A refusal raises `ControlPlaneError` and writes nothing. See docs/ingest.md for the modes and the order
of the checks.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from controlplane.channels import cloudevents
from controlplane.channels.models import KeyKind, Producer, ProducerKey
from controlplane.kernel import signatures
from controlplane.kernel.context import parse_traceparent
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.chain import PreparedEvent
from controlplane.ledger.models import Fidelity, LedgerEvent
from controlplane.ledger.services import ledger_append_prepared, ledger_prepare
from controlplane.ledger.writer import AsyncChainWriter, Body, ChainBatch, ChainWriter, NoActiveKey
from incidents.services import (
    SIGNAL_CLOUDEVENT_TYPE,
    detection_locks_take,
    signal_cloudevent_normalise,
    signal_ingest,
)

logger = logging.getLogger(__name__)

SIGNING_MODES = ("off", "allow-unsigned", "require-signed", "require-valid-signature")
# Printable ASCII without "." (the separator of the signed content) and without spaces.
_WEBHOOK_ID = re.compile(r"^[\x21-\x2d\x2f-\x7e]{1,200}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class SignatureVerdict:
    """What the signature check concluded, recorded in the event's provenance."""

    name: str  # verified | expired-key | unsigned | unchecked
    key_id: str | None
    fidelity: str
    reason_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Accepted:
    event: LedgerEvent
    verdict: SignatureVerdict

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.event.seq,
            "id": self.event.id,
            "hash": self.event.hash,
            "verdict": self.verdict.name,
            "key_id": self.verdict.key_id,
            "fidelity": self.verdict.fidelity,
        }


# What one delivery of a batch came to: accepted, or refused (DUPLICATE_EVENT).
Outcome = Accepted | ControlPlaneError


def _webhook_id_or_refuse(webhook_id: str | None) -> str:
    if not webhook_id:
        return ""
    if not _WEBHOOK_ID.match(webhook_id):
        raise ControlPlaneError(
            "MALFORMED_EVENT", "webhook-id must be 1-200 printable ASCII characters without '.' or spaces"
        )
    return webhook_id


def signature_verdict(
    *,
    mode: str,
    keys: list[ProducerKey],
    webhook_id: str,
    webhook_timestamp: str | None,
    webhook_signature: str | None,
    body: bytes,
    now: datetime,
) -> SignatureVerdict:
    """Check a delivery's Standard Webhooks signature against the producer's keys under `mode`.

    Returns the verdict or raises SIGNATURE_MISSING, MALFORMED_EVENT (signing headers), STALE_TIMESTAMP,
    SIGNATURE_INVALID, KEY_UNKNOWN, KEY_REVOKED or KEY_EXPIRED.
    """
    if mode == "off":
        return SignatureVerdict("unchecked", None, Fidelity.DEGRADED)
    if not webhook_signature or not webhook_signature.strip():
        if mode == "allow-unsigned":
            return SignatureVerdict("unsigned", None, Fidelity.DEGRADED, ("SIGNATURE_MISSING",))
        raise ControlPlaneError("SIGNATURE_MISSING", f"signing mode {mode} requires webhook-signature")
    if not webhook_id:
        raise ControlPlaneError("MALFORMED_EVENT", "webhook-signature needs a webhook-id header")
    if not webhook_timestamp or not _TIMESTAMP.match(webhook_timestamp.strip()):
        raise ControlPlaneError("MALFORMED_EVENT", "webhook-timestamp must be integer unix seconds")
    timestamp = int(webhook_timestamp.strip())
    skew = timestamp - int(now.timestamp())
    tolerance = settings.CONTROLPLANE_EVENT_TOLERANCE_SECONDS
    if abs(skew) > tolerance:
        raise ControlPlaneError(
            "STALE_TIMESTAMP",
            f"webhook-timestamp is {abs(skew)}s {'ahead of' if skew > 0 else 'behind'} the server's "
            f"clock; the tolerance is {tolerance}s",
        )
    presented = signatures.parse_signatures(webhook_signature)
    if not presented:
        raise ControlPlaneError("SIGNATURE_INVALID", "webhook-signature holds no v1 or v1a signature")
    hmac_candidates = [s.raw for s in presented if s.version == signatures.HMAC_VERSION]
    ed25519_candidates = [s.raw for s in presented if s.version == signatures.ED25519_VERSION]
    usable = [
        key
        for key in keys
        if (key.kind == KeyKind.HMAC and hmac_candidates)
        or (key.kind == KeyKind.ED25519 and ed25519_candidates)
    ]
    if not usable:
        raise ControlPlaneError(
            "KEY_UNKNOWN", "the producer holds no key of the kind (v1 HMAC / v1a Ed25519) that signed this"
        )
    content = signatures.signed_content(webhook_id, timestamp, body)

    def matches(key: ProducerKey) -> bool:
        if key.kind == KeyKind.HMAC:
            return signatures.hmac_matches(key.secret, content, hmac_candidates)
        return signatures.ed25519_matches(key.public_key, content, ed25519_candidates)

    # Valid keys first, open-ended before retiring, newest first: during a rotation a delivery signed by
    # both keys is attributed to the new one, and the common case verifies with the first key tried.
    usable.sort(key=lambda k: (not k.is_valid_at(now), k.valid_until is not None, -k.valid_from.timestamp()))
    for key in usable:
        if not matches(key):
            continue
        if key.is_valid_at(now):
            return SignatureVerdict("verified", key.key_id, Fidelity.LIVE)
        if key.revoked_at is not None:
            raise ControlPlaneError("KEY_REVOKED", f"signed with revoked key {key.key_id}")
        if mode == "require-valid-signature":
            raise ControlPlaneError(
                "KEY_EXPIRED",
                f"signed with key {key.key_id}, which is {key.status_at(now)} at {now:%Y-%m-%dT%H:%M:%SZ}",
            )
        return SignatureVerdict("expired-key", key.key_id, Fidelity.DEGRADED, ("KEY_EXPIRED",))
    raise ControlPlaneError(
        "SIGNATURE_INVALID", "no signature in webhook-signature verifies with the producer's keys"
    )


def _duplicate(seq: int | None, by: str) -> ControlPlaneError:
    return ControlPlaneError(
        "DUPLICATE_EVENT",
        f"a delivery with this {by} was already accepted" + (f" as seq {seq}" if seq else ""),
        extra={"seq": seq, "duplicate_of": by},
    )


@dataclass(frozen=True)
class CheckedDelivery:
    """A delivery that passed every check but the duplicate check, with its ledger event prepared."""

    producer: Producer
    webhook_id: str
    ce_id: str
    verdict: SignatureVerdict
    event: PreparedEvent
    received_at: datetime
    signal: Any = None  # a NormalisedSignal when the event is of type io.controlplane.signal (incidents)


def event_check(
    *,
    producer: Producer,
    keys: list[ProducerKey],
    body: bytes,
    content_type: str,
    webhook_id: str | None,
    webhook_timestamp: str | None,
    webhook_signature: str | None,
    received_at: datetime | None = None,
) -> CheckedDelivery:
    """Verify and check one CloudEvent delivered by `producer` (whose `principal` is loaded); write nothing.

    Checks run in a fixed order: webhook-id shape, signature (by the signing mode), content type,
    CloudEvent attributes, reserved type, canonical form. Raises the refusal's `ControlPlaneError`.
    """
    now = received_at or timezone.now()
    mode = settings.CONTROLPLANE_EVENT_SIGNING_MODE
    webhook_id = _webhook_id_or_refuse(webhook_id)
    verdict = signature_verdict(
        mode=mode,
        keys=keys,
        webhook_id=webhook_id,
        webhook_timestamp=webhook_timestamp,
        webhook_signature=webhook_signature,
        body=body,
        now=now,
    )
    if content_type not in cloudevents.MEDIA_TYPES:
        raise ControlPlaneError(
            "MALFORMED_EVENT",
            f"content type {content_type or '(none)'!r} is not structured-mode CloudEvents JSON "
            f"({' or '.join(cloudevents.MEDIA_TYPES)})",
        )
    event = cloudevents.parse(body)
    signal = None
    if event.type == SIGNAL_CLOUDEVENT_TYPE:
        signal = signal_cloudevent_normalise(
            principal=producer.principal, ce_source=event.source, data=event.data if event.has_data else None
        )
    prepared = _ledger_event(
        producer=producer, event=event, verdict=verdict, webhook_id=webhook_id, mode=mode, body=body, now=now
    )
    return CheckedDelivery(
        producer=producer,
        webhook_id=webhook_id,
        ce_id=event.id,
        verdict=verdict,
        event=prepared,
        received_at=now,
        signal=signal,
    )


def events_batch_check(
    *,
    producer: Producer,
    keys: list[ProducerKey],
    body: bytes,
    webhook_id: str | None,
    webhook_timestamp: str | None,
    webhook_signature: str | None,
    received_at: datetime | None = None,
) -> list[CheckedDelivery | ControlPlaneError]:
    """Verify a batched delivery (`application/cloudevents-batch+json`) as one: its webhook-id and its
    signature over the whole body, in the same order and with the same codes as one event; then check
    each event on its own. Raises the batch's refusal; returns, per event, its checked delivery or its own
    refusal. Each event's delivery is recorded under `<webhook-id>#<index>`, so a retried batch repeats
    each of its events and each is refused alone (DUPLICATE_EVENT). Writes nothing."""
    now = received_at or timezone.now()
    mode = settings.CONTROLPLANE_EVENT_SIGNING_MODE
    webhook_id = _webhook_id_or_refuse(webhook_id)
    if webhook_id and len(webhook_id) > 190:
        raise ControlPlaneError("MALFORMED_EVENT", "a batch's webhook-id is at most 190 characters")
    verdict = signature_verdict(
        mode=mode,
        keys=keys,
        webhook_id=webhook_id,
        webhook_timestamp=webhook_timestamp,
        webhook_signature=webhook_signature,
        body=body,
        now=now,
    )
    outcomes: list[CheckedDelivery | ControlPlaneError] = []
    for index, raw in enumerate(cloudevents.parse_batch(body)):
        item_id = f"{webhook_id}#{index}" if webhook_id else ""
        try:
            event = cloudevents.parse_object(raw)
            signal = None
            if event.type == SIGNAL_CLOUDEVENT_TYPE:
                signal = signal_cloudevent_normalise(
                    principal=producer.principal,
                    ce_source=event.source,
                    data=event.data if event.has_data else None,
                )
            prepared = _ledger_event(
                producer=producer,
                event=event,
                verdict=verdict,
                webhook_id=item_id,
                mode=mode,
                body=body,
                now=now,
                batch_index=index,
            )
        except ControlPlaneError as exc:
            outcomes.append(exc)
            continue
        outcomes.append(
            CheckedDelivery(
                producer=producer,
                webhook_id=item_id,
                ce_id=event.id,
                verdict=verdict,
                event=prepared,
                received_at=now,
                signal=signal,
            )
        )
    return outcomes


def _ledger_event(
    *,
    producer: Producer,
    event: cloudevents.CloudEvent,
    verdict: SignatureVerdict,
    webhook_id: str,
    mode: str,
    body: bytes,
    now: datetime,
    batch_index: int | None = None,
) -> PreparedEvent:
    """The ledger event of a checked CloudEvent: its data where it fits (an object), the rest and how it
    was verified in its provenance (docs/ingest.md, "What lands on the ledger"); MALFORMED_EVENT when it
    cannot be canonicalised."""
    original = dict(event.attributes)
    if event.has_data and isinstance(event.data, dict):
        data, data_location = event.data, "ledger.data"
    elif event.has_data or "data_base64" in original:
        data, data_location = {}, "provenance.cloudevent"
        if event.has_data:
            original["data"] = event.data
    else:
        data, data_location = {}, "absent"
    provenance = {
        "producer": producer.ref,
        "key_id": verdict.key_id,
        "verdict": verdict.name,
        "webhook_id": webhook_id or None,
        "ce_id": event.id,
        "signing_mode": mode,
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "data_location": data_location,
        "cloudevent": original,
    }
    if batch_index is not None:  # body_sha256 is then the signed batch's; this event is its item
        provenance["batch_index"] = batch_index
    # The distributed-tracing extension names the event's own trace; otherwise the request's is used.
    traceparent = original.get("traceparent")
    if not (isinstance(traceparent, str) and parse_traceparent(traceparent)):
        traceparent = None
    try:
        return ledger_prepare(
            type=event.type,
            source=event.source,
            subject=event.subject,
            time=event.time or now,
            data=data,
            tenant=producer.tenant.slug,
            actor=producer.principal.ref,
            idempotency_key=f"ingest:{producer.pk}:{event.id}",
            fidelity=verdict.fidelity,
            reason_codes=verdict.reason_codes,
            provenance=provenance,
            event_id=uuid.uuid4().hex,
            traceparent=traceparent,
        )
    except ControlPlaneError as exc:
        if exc.code == "LEDGER_NOT_CANONICAL":
            raise ControlPlaneError(
                "MALFORMED_EVENT", f"the event cannot be canonicalised: {exc.detail}"
            ) from exc
        raise


def event_ingest(
    *,
    producer: Producer,
    keys: list[ProducerKey],
    body: bytes,
    content_type: str,
    webhook_id: str | None,
    webhook_timestamp: str | None,
    webhook_signature: str | None,
    received_at: datetime | None = None,
) -> Accepted:
    """Verify, check and append one CloudEvent delivered by `producer` (whose `principal` is loaded).

    `event_check`, then `deliveries_append` in one transaction (the caller's, if any). A second delivery
    with the same webhook-id or CloudEvents id is refused with DUPLICATE_EVENT (409, naming the
    original seq) and writes nothing.
    """
    checked = event_check(
        producer=producer,
        keys=keys,
        body=body,
        content_type=content_type,
        webhook_id=webhook_id,
        webhook_timestamp=webhook_timestamp,
        webhook_signature=webhook_signature,
        received_at=received_at,
    )
    outcome = deliveries_append([checked])[0]
    if isinstance(outcome, ControlPlaneError):
        raise outcome
    return outcome


_EARLIER_SQL = """
    SELECT producer_id, webhook_id, ce_id, seq FROM channels_delivery
     WHERE {match}
     ORDER BY seq
"""
_DELIVERY_COLUMNS = ("producer_id", "webhook_id", "ce_id", "seq", "received_at")
_DELIVERY_INSERT_SQL = "INSERT INTO channels_delivery ({}) VALUES ".format(  # noqa: S608  (constant columns)
    ", ".join(_DELIVERY_COLUMNS)
)


def _earlier_query(deliveries: Sequence[CheckedDelivery]) -> tuple[str, list[Any]]:
    """Accepted deliveries that share a producer's CloudEvents id or webhook-id with any of these."""
    clauses, params = [], []
    for d in deliveries:
        if d.webhook_id:
            clauses.append("(producer_id = %s AND (ce_id = %s OR webhook_id = %s))")
            params += [d.producer.pk, d.ce_id, d.webhook_id]
        else:
            clauses.append("(producer_id = %s AND ce_id = %s)")
            params += [d.producer.pk, d.ce_id]
    return _EARLIER_SQL.format(match=" OR ".join(clauses)), params


def _earlier_deliveries(deliveries: Sequence[CheckedDelivery]) -> list[tuple[int, str, str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(*_earlier_query(deliveries))
        return cursor.fetchall()


def _first_match(
    d: CheckedDelivery, accepted: Sequence[tuple[int, str, str, int | None]]
) -> ControlPlaneError | None:
    """DUPLICATE_EVENT naming the first accepted delivery this one repeats (the CloudEvents id first)."""
    same_producer = [a for a in accepted if a[0] == d.producer.pk]
    for by, hit in (
        ("CloudEvents id", next((a for a in same_producer if a[2] == d.ce_id), None)),
        ("webhook-id", next((a for a in same_producer if d.webhook_id and a[1] == d.webhook_id), None)),
    ):
        if hit is not None:
            return _duplicate(hit[3], by)
    return None


def _repeat_in(d: CheckedDelivery, batch: Sequence[CheckedDelivery]) -> tuple[int, str] | None:
    """(index, by) of the first delivery in `batch` that `d` repeats, or None."""
    for index, other in enumerate(batch):
        if other.producer.pk != d.producer.pk:
            continue
        if other.ce_id == d.ce_id:
            return index, "CloudEvents id"
        if d.webhook_id and other.webhook_id == d.webhook_id:
            return index, "webhook-id"
    return None


# Per delivery of a batch: its refusal, or (index among those appended, None | what it repeats).
_Plan = list[ControlPlaneError | tuple[int, str | None]]


def _plan(
    deliveries: Sequence[CheckedDelivery], earlier: Sequence[tuple[int, str, str, int]]
) -> tuple[list[CheckedDelivery], _Plan]:
    """Which deliveries to append: not those repeating one on the chain, nor one earlier in the batch."""
    appending: list[CheckedDelivery] = []
    plan: _Plan = []
    for d in deliveries:
        refused = _first_match(d, earlier)
        if refused is not None:
            plan.append(refused)
            continue
        repeat = _repeat_in(d, appending)
        if repeat is not None:
            plan.append(repeat)
            continue
        plan.append((len(appending), None))
        appending.append(d)
    return appending, plan


def _accept(
    appending: Sequence[CheckedDelivery], placed: Sequence[tuple[int, LedgerEvent | None]]
) -> tuple[list[Outcome], list[list[Any]]]:
    """The outcome of each appended delivery and the Delivery rows to insert; an event whose
    idempotency key was already on the chain (placed as None) is a duplicate."""
    results: list[Outcome] = []
    rows: list[list[Any]] = []
    for d, (seq, event) in zip(appending, placed, strict=True):
        if event is None:
            results.append(_duplicate(seq, "CloudEvents id"))
            continue
        results.append(Accepted(event=event, verdict=d.verdict))
        rows.append([d.producer.pk, d.webhook_id, d.ce_id, event.seq, d.received_at])
    return results, rows


def _delivery_insert(rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    placeholders = "(" + ", ".join(["%s"] * len(_DELIVERY_COLUMNS)) + ")"
    return _DELIVERY_INSERT_SQL + ", ".join([placeholders] * len(rows)), [v for row in rows for v in row]


def _outcomes(plan: _Plan, results: Sequence[Outcome]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for step in plan:
        if isinstance(step, ControlPlaneError):
            outcomes.append(step)
            continue
        index, by = step
        original = results[index]
        if by is None:
            outcomes.append(original)
        else:
            seq = original.event.seq if isinstance(original, Accepted) else original.extra.get("seq")
            outcomes.append(_duplicate(seq, by))
    return outcomes


def deliveries_append(deliveries: Sequence[CheckedDelivery]) -> list[Outcome]:
    """Append checked deliveries and their `Delivery` rows in one transaction (the caller's, if any).

    Returns, per delivery, what was accepted or its refusal (DUPLICATE_EVENT): the outcome appending
    them one by one, in order, would have given — a repeat of an earlier delivery, on the chain or
    earlier in `deliveries`, is refused naming the original seq. Raises `ControlPlaneError` when the
    ledger cannot append (then nothing is written).
    """
    try:
        with transaction.atomic():
            appending, plan = _plan(deliveries, _earlier_deliveries(deliveries))
            # Signal ingest's detection locks come before the chain's lock, in every transaction that
            # ingests signals (incidents/services/signals.py): taken here, before this append.
            detection_locks_take(
                scopes=[(d.producer.tenant_id, d.signal.service) for d in appending if d.signal is not None]
            )
            # Signals first, each appending its CloudEvent's own event with its detection's: the chain's
            # lock comes after the incident rows detection locks (the order of every incident
            # transition). Then the plain events, in one append.
            events: dict[int, LedgerEvent] = {}
            for index, d in enumerate(appending):
                if d.signal is not None:
                    events[index] = signal_ingest(
                        tenant=d.producer.tenant,
                        signals=[d.signal],
                        actor=d.producer.principal.ref,
                        cause=d.event,
                    ).cause
            plain = [index for index, d in enumerate(appending) if d.signal is None]
            appended = ledger_append_prepared([appending[index].event for index in plain])
            events.update(zip(plain, appended, strict=True))
            placed = [
                (events[i].seq, events[i] if events[i].id == d.event.fields["id"] else None)
                for i, d in enumerate(appending)
            ]
            results, rows = _accept(appending, placed)
            if rows:
                with connection.cursor() as cursor:
                    cursor.execute(*_delivery_insert(rows))
    except IntegrityError:
        return _one_by_one(deliveries)
    return _outcomes(plan, results)


def _one_by_one(deliveries: Sequence[CheckedDelivery]) -> list[Outcome]:
    """After a unique violation: a concurrent delivery (another process, between our check and our
    insert) holds a webhook-id or CloudEvents id; the whole transaction was rolled back. Sort it out one
    delivery at a time."""
    if len(deliveries) > 1:
        return [outcome for d in deliveries for outcome in deliveries_append([d])]
    first = _first_match(deliveries[0], _earlier_deliveries(deliveries))
    return [first or _duplicate(None, "webhook-id")]


def _pipelined(
    deliveries: Sequence[CheckedDelivery],
) -> tuple[ChainBatch, Body[list[Outcome]]]:
    """`deliveries_append` as one chain transaction for a writer of controlplane.ledger.writer: the same
    checks, rows and outcomes. Only for deliveries that carry no signal (those run detection, through
    the ORM, in their transaction)."""
    assert all(d.signal is None for d in deliveries), "signals take deliveries_append (detection)"
    batch = ChainBatch(
        idempotency_keys=[d.event.idempotency_key for d in deliveries if d.event.idempotency_key],
        reads=[_earlier_query(deliveries)],
    )

    def body(chain: ChainBatch) -> list[Outcome]:
        appending, plan = _plan(deliveries, chain.results[0])
        results, rows = _accept(appending, chain.append([d.event for d in appending]))
        if rows:
            chain.execute_many(_delivery_insert([rows[0]])[0], rows)
        return _outcomes(plan, results)

    return batch, body


def _pipelined_failed(deliveries: Sequence[CheckedDelivery], exc: Exception) -> list[Outcome]:
    """After a pipelined transaction failed (and rolled back): no active key yet — the ORM path activates
    one; a unique violation (a concurrent delivery of the same ids) — one by one; else LEDGER_WRITE_FAILED."""
    if isinstance(exc, NoActiveKey):
        return deliveries_append(deliveries)
    if isinstance(exc, psycopg.IntegrityError):
        return _one_by_one(deliveries)
    logger.error("group commit of %d deliveries failed", len(deliveries), exc_info=exc)
    raise ControlPlaneError("LEDGER_WRITE_FAILED", "the ledger could not append the events") from exc


def deliveries_append_pipelined(
    deliveries: Sequence[CheckedDelivery], *, writer: ChainWriter
) -> list[Outcome]:
    """`deliveries_append` for deliveries without signals, on `writer`'s connection in two round trips."""
    try:
        return writer.run(*_pipelined(deliveries))
    except (NoActiveKey, psycopg.Error) as exc:
        return _pipelined_failed(deliveries, exc)


async def deliveries_append_pipelined_async(
    deliveries: Sequence[CheckedDelivery], *, writer: AsyncChainWriter
) -> list[Outcome]:
    """The same without blocking the event loop (the fallbacks run on a thread, through the ORM)."""
    try:
        return await writer.run(*_pipelined(deliveries))
    except (NoActiveKey, psycopg.Error) as exc:
        return await sync_to_async(_pipelined_failed, thread_sensitive=False)(deliveries, exc)
