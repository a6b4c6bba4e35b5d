"""Every write of the channels app: producers and their keys, signed event ingest, rejection counters.

Producer and key changes are ledgered in the same transaction (never with a secret in the event).
`event_ingest` verifies a Standard Webhooks signature over the raw body according to the signing mode,
checks the CloudEvent, and appends it to the ledger together with its `Delivery` row; a refusal raises
`ControlPlaneError` and writes nothing. See docs/ingest.md for the modes and the order of the checks.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from controlplane.channels import cloudevents
from controlplane.channels.models import KeyKind, Producer, ProducerKey
from controlplane.identity import services as identity
from controlplane.identity.models import Principal, PrincipalKind, Tenant
from controlplane.identity.selectors import tenant_get
from controlplane.kernel import signatures
from controlplane.kernel.context import parse_traceparent
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.chain import PreparedEvent
from controlplane.ledger.models import Fidelity, LedgerEvent
from controlplane.ledger.services import ledger_append, ledger_append_prepared, ledger_prepare
from controlplane.ledger.writer import AsyncChainWriter, Body, ChainBatch, ChainWriter, NoActiveKey
from incidents.services import (
    SIGNAL_CLOUDEVENT_TYPE,
    detection_locks_take,
    signal_cloudevent_normalise,
    signal_ingest,
)

logger = logging.getLogger(__name__)

SIGNING_MODES = ("off", "allow-unsigned", "require-signed", "require-valid-signature")
DEFAULT_OVERLAP_SECONDS = 24 * 3600
INGEST_CAPABILITY = "events.ingest"
UNKNOWN_PRODUCER = "unknown"
# Every code the ingest endpoint can answer with; each refusal is counted per (producer, code).
REJECTION_CODES = (
    "AUTH_REQUIRED",
    "AUTH_INVALID_TOKEN",
    "AUTH_THROTTLED",
    "CAPABILITY_MISSING",
    "METHOD_NOT_ALLOWED",
    "PRODUCER_UNKNOWN",
    "SIGNATURE_MISSING",
    "SIGNATURE_INVALID",
    "KEY_UNKNOWN",
    "KEY_REVOKED",
    "KEY_EXPIRED",
    "STALE_TIMESTAMP",
    "MALFORMED_EVENT",
    "EVENT_TYPE_RESERVED",
    "DUPLICATE_EVENT",
    "INGEST_OVERLOADED",
    "LEDGER_WRITE_FAILED",
    "LEDGER_KEY_UNAVAILABLE",
)

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")
# Printable ASCII without "." (the separator of the signed content) and without spaces.
_WEBHOOK_ID = re.compile(r"^[\x21-\x2d\x2f-\x7e]{1,200}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def _actor_ref(actor: Principal | str | None) -> str:
    if actor is None:
        return "system"
    return actor if isinstance(actor, str) else actor.ref


# --- producers and keys ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedProducer:
    """A new producer with its secrets. The token and the HMAC secret exist nowhere else in the clear
    except the key row the verifier needs; show them once."""

    producer: Producer
    token_secret: str
    hmac_secret: str | None  # `whsec_...`; None when the producer signs with Ed25519
    key_id: str


@dataclass(frozen=True)
class RotatedKey:
    key: ProducerKey
    hmac_secret: str | None
    retired: list[ProducerKey]


def principal_name_for(name: str) -> str:
    """The service principal behind producer `name` (prefixed so it cannot clash with people)."""
    return f"producer-{name}"


def _public_key_or_refuse(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    try:
        return signatures.ed25519_public_key_normalise(text)
    except ValueError as exc:
        raise ControlPlaneError("VALIDATION_FAILED", f"--ed25519-public-key: {exc}") from exc


def _key_create(
    *, producer: Producer, public_key: str | None, now: datetime
) -> tuple[ProducerKey, str | None]:
    key_id = f"pk_{secrets.token_hex(8)}"
    if public_key:
        key = ProducerKey.objects.create(
            producer=producer, key_id=key_id, kind=KeyKind.ED25519, public_key=public_key, valid_from=now
        )
        return key, None
    secret = signatures.hmac_secret_generate()
    key = ProducerKey.objects.create(
        producer=producer, key_id=key_id, kind=KeyKind.HMAC, secret=secret, valid_from=now
    )
    return key, secret


def _key_data(key: ProducerKey) -> dict[str, Any]:
    data = {"key_id": key.key_id, "kind": key.kind, "valid_from": key.valid_from.isoformat()}
    if key.kind == KeyKind.ED25519:
        data["public_key"] = key.public_key  # public; the HMAC secret never goes on the ledger
    return data


@transaction.atomic
def producer_create(
    *,
    tenant: Tenant | str,
    name: str,
    ed25519_public_key: str | None = None,
    actor: Principal | str = "system",
) -> CreatedProducer:
    """Register a producer: a `service` principal holding `events.ingest`, its API token and one key.

    The key is an HMAC key with a fresh `whsec_` secret, or, given `ed25519_public_key` (base64 of the
    32 raw bytes, optionally `whpk_`), an Ed25519 key. `tenant` may be a Tenant or a slug (created if
    new). Refused with VALIDATION_FAILED, PRODUCER_EXISTS or PRINCIPAL_EXISTS, writing nothing.
    """
    if not _NAME.match(name):
        raise ControlPlaneError(
            "VALIDATION_FAILED", "a producer name is 1-80 lower-case letters, digits and inner hyphens"
        )
    public_key = _public_key_or_refuse(ed25519_public_key)
    if isinstance(tenant, str):
        tenant = identity.tenant_create(slug=tenant, actor=actor)
    if Producer.objects.filter(tenant=tenant, name=name).exists():
        raise ControlPlaneError("PRODUCER_EXISTS", f"producer {tenant.slug}/{name} exists")
    principal = identity.principal_create(
        tenant=tenant, name=principal_name_for(name), kind=PrincipalKind.SERVICE, actor=actor
    )
    identity.grant_add(principal=principal, capability=INGEST_CAPABILITY, actor=actor)
    issued = identity.token_issue(principal=principal, name=f"producer {name}", actor=actor)
    now = timezone.now()
    producer = Producer.objects.create(tenant=tenant, name=name, principal=principal, created_at=now)
    key, hmac_secret = _key_create(producer=producer, public_key=public_key, now=now)
    ledger_append(
        type="controlplane.channels.producer.created",
        subject=f"producer/{producer.ref}",
        data={
            "producer": producer.ref,
            "principal": principal.ref,
            "token_prefix": issued.token.prefix,
            "key": _key_data(key),
        },
        tenant=tenant.slug,
        actor=_actor_ref(actor),
    )
    return CreatedProducer(
        producer=producer, token_secret=issued.secret, hmac_secret=hmac_secret, key_id=key.key_id
    )


def producer_get(*, tenant: Tenant | str, name: str) -> Producer:
    """The producer `name` of a tenant, or PRODUCER_NOT_FOUND (TENANT_NOT_FOUND for an unknown slug)."""
    if isinstance(tenant, str):
        tenant = tenant_get(slug=tenant)
    producer = Producer.objects.select_related("tenant", "principal").filter(tenant=tenant, name=name).first()
    if producer is None:
        raise ControlPlaneError("PRODUCER_NOT_FOUND", f"no producer {tenant.slug}/{name}")
    return producer


@transaction.atomic
def producer_key_rotate(
    *,
    producer: Producer,
    ed25519_public_key: str | None = None,
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS,
    actor: Principal | str = "system",
) -> RotatedKey:
    """Add a new key, valid now, and end every open key after `overlap_seconds` (default 24 hours).

    During the overlap both keys verify, so a producer can send both signatures and switch at leisure.
    """
    if overlap_seconds < 0:
        raise ControlPlaneError("VALIDATION_FAILED", "--overlap-seconds may not be negative")
    public_key = _public_key_or_refuse(ed25519_public_key)
    producer = Producer.objects.select_for_update().select_related("tenant").get(pk=producer.pk)
    now = timezone.now()
    until = now + timedelta(seconds=overlap_seconds)
    retired = [
        key
        for key in producer.keys.filter(revoked_at__isnull=True)
        if key.valid_until is None or key.valid_until > until
    ]
    for key in retired:
        key.valid_until = until
        key.save(update_fields=["valid_until"])
    key, hmac_secret = _key_create(producer=producer, public_key=public_key, now=now)
    ledger_append(
        type="controlplane.channels.producer.key.rotated",
        subject=f"producer/{producer.ref}",
        data={
            "producer": producer.ref,
            "key": _key_data(key),
            "overlap_seconds": overlap_seconds,
            "retired": [{"key_id": k.key_id, "valid_until": until.isoformat()} for k in retired],
        },
        tenant=producer.tenant.slug,
        actor=_actor_ref(actor),
    )
    return RotatedKey(key=key, hmac_secret=hmac_secret, retired=retired)


@transaction.atomic
def producer_key_revoke(*, key_id: str, reason: str = "", actor: Principal | str = "system") -> ProducerKey:
    """Revoke a key at once (compromise): its signatures are refused in every mode from now on.

    Revoking a revoked key returns it unchanged and writes nothing. Unknown: PRODUCER_KEY_NOT_FOUND.
    """
    key = (
        ProducerKey.objects.select_for_update(of=("self",))
        .select_related("producer__tenant")
        .filter(key_id=key_id)
        .first()
    )
    if key is None:
        raise ControlPlaneError("PRODUCER_KEY_NOT_FOUND", f"no producer key {key_id!r}")
    if key.revoked_at is not None:
        return key
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    ledger_append(
        type="controlplane.channels.producer.key.revoked",
        subject=f"producer/{key.producer.ref}",
        data={"producer": key.producer.ref, "key_id": key.key_id, "kind": key.kind, "reason": reason},
        tenant=key.producer.tenant.slug,
        actor=_actor_ref(actor),
        reason_codes=["KEY_REVOKED"],
    )
    return key


# --- signed ingest ---------------------------------------------------------------------------------


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
    # The distributed-tracing extension names the event's own trace; otherwise the request's is used.
    traceparent = original.get("traceparent")
    if not (isinstance(traceparent, str) and parse_traceparent(traceparent)):
        traceparent = None
    try:
        prepared = ledger_prepare(
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
    return CheckedDelivery(
        producer=producer,
        webhook_id=webhook_id,
        ce_id=event.id,
        verdict=verdict,
        event=prepared,
        received_at=now,
        signal=signal,
    )


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


# --- rejection counters ----------------------------------------------------------------------------


def rejection_key(label: str, code: str) -> str:
    return f"channels:ingest-rejections:{label}:{code}"


def rejection_record(*, producer: Producer | None, code: str, deferred: bool = False) -> None:
    """Count one refusal of the ingest endpoint per (producer or "unknown", code) in the cache (Redis).

    Counting is best effort: a cache outage is logged and never turns a refusal into a server error.
    `deferred` counts in this process and writes to the cache within a second (refusals under overload
    must cost next to nothing); the counters' readers flush this process's pending counts first.
    """
    if code not in REJECTION_CODES:
        return
    key = rejection_key(str(producer.pk) if producer is not None else UNKNOWN_PRODUCER, code)
    if deferred:
        with _pending_lock:
            _pending[key] += 1
            global _flush_timer
            if _flush_timer is None:
                _flush_timer = threading.Timer(1.0, rejection_flush)
                _flush_timer.daemon = True
                _flush_timer.start()
        return
    _count(key, 1)


def _count(key: str, delta: int) -> None:
    try:
        try:
            cache.incr(key, delta)
        except ValueError:
            cache.add(key, 0, timeout=None)
            cache.incr(key, delta)
    except Exception:
        logger.warning("could not count ingest rejections %s", key, exc_info=True)


_pending: Counter[str] = Counter()
_pending_lock = threading.Lock()
_flush_timer: threading.Timer | None = None


def rejection_flush() -> None:
    """Write this process's deferred refusal counts to the cache."""
    global _flush_timer
    with _pending_lock:
        pending = dict(_pending)
        _pending.clear()
        _flush_timer = None
    for key, delta in pending.items():
        _count(key, delta)
