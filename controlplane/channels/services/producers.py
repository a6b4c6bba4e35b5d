"""Producers and their signing keys: register, look up, rotate, revoke.

Every change is ledgered in the same transaction, holding key ids, kinds and public keys, never a
secret (docs/ingest.md, "Registering a producer" and "Rotating a key").
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.channels.models import KeyKind, Producer, ProducerKey
from controlplane.identity import services as identity
from controlplane.identity.models import Principal, PrincipalKind, Tenant
from controlplane.identity.selectors import tenant_get
from controlplane.kernel import signatures
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append

DEFAULT_OVERLAP_SECONDS = 24 * 3600
INGEST_CAPABILITY = "events.ingest"

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")


def _actor_ref(actor: Principal | str | None) -> str:
    if actor is None:
        return "system"
    return actor if isinstance(actor, str) else actor.ref


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
