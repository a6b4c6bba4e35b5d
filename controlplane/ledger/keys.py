"""The ledger's signing keys: generating, rotating and revoking them.

Each operation takes the chain's lock and works at the head it reads, so a key's validity is a range of
seqs with no event outside it; none may run inside `ledger_deferred()`. The activation of a key under the
lock (also made by the first append of a fresh chain) is `chain.chain_activate_key`.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger import crypto
from controlplane.ledger.batch import current_batch
from controlplane.ledger.chain import (
    ChainHead,
    chain_activate_key,
    chain_lock_and_read_head,
    key_unavailable_error,
)
from controlplane.ledger.models import SigningKey, signing_key_writes
from controlplane.ledger.services import ledger_append


def locked_head() -> ChainHead:
    """Take the chain lock and read the head, for key and checkpoint operations (outside any
    `ledger_deferred()` block: they read the head now, and a deferred batch would be chained after it)."""
    if current_batch() is not None:  # the head is read now: a deferred batch would be chained after it
        raise TransactionManagementError("key and checkpoint operations cannot run inside ledger_deferred()")
    with connection.cursor() as cursor:
        head, _ = chain_lock_and_read_head(cursor, [])
    return head


@transaction.atomic
def key_generate(*, actor: str = "system") -> SigningKey:
    """Register a key: the one in CONTROLPLANE_LEDGER_KEY if it is not yet known, else a new one.

    With no active key it becomes active; otherwise it waits on standby for `key_rotate(to_key_id=...)`.
    """
    head = locked_head()
    configured = crypto.configured_private_key()
    if (
        configured
        and SigningKey.objects.filter(key_id=crypto.key_id_for(crypto.public_bytes(configured))).exists()
    ):
        configured = None
    if head.key_id is None:
        head = chain_activate_key(
            head,
            event_type="controlplane.ledger.key.activated",
            actor=actor,
            reason="generated",
            private_key=configured,
        )
        return SigningKey.objects.get(key_id=head.key_id)
    private_key = configured or Ed25519PrivateKey.generate()
    key_id = crypto.key_id_for(crypto.public_bytes(private_key))
    if configured is None:
        crypto.store_private_key(private_key)
    with signing_key_writes():
        key = SigningKey.objects.create(
            key_id=key_id, public_key=crypto.b64(crypto.public_bytes(private_key)), created_at=timezone.now()
        )
    ledger_append(
        type="controlplane.ledger.key.generated",
        subject=f"ledger-key/{key_id}",
        data={"key_id": key_id, "public_key": key.public_key},
        actor=actor,
    )
    return key


@transaction.atomic
def key_rotate(
    *, actor: str = "system", to_key_id: str | None = None, reason: str = "rotation"
) -> SigningKey:
    """Retire the active key at the head and sign from the next seq on with a new (or standby) key."""
    head = locked_head()
    private_key = None
    if to_key_id:
        key = SigningKey.objects.filter(key_id=to_key_id).first()
        if key is None:
            raise ControlPlaneError("LEDGER_KEY_NOT_FOUND", f"no ledger key {to_key_id}")
        if key.status != "standby":
            raise ControlPlaneError("LEDGER_KEY_NOT_VALID", f"key {to_key_id} is {key.status}, not standby")
        private_key = crypto.load_private_key(to_key_id)
        if private_key is None:
            raise key_unavailable_error(to_key_id)
    head = chain_activate_key(
        head,
        event_type="controlplane.ledger.key.rotated",
        actor=actor,
        reason=reason,
        private_key=private_key,
    )
    return SigningKey.objects.get(key_id=head.key_id)


@transaction.atomic
def key_revoke(*, key_id: str, reason: str, actor: str = "system") -> SigningKey:
    """Mark a key compromised. Verification then reports every event it signed (LEDGER_KEY_REVOKED).

    Revoking the active key first rotates to a fresh key, so the revocation itself is signed by a key
    that is still trusted.
    """
    key = SigningKey.objects.select_for_update().filter(key_id=key_id).first()
    if key is None:
        raise ControlPlaneError("LEDGER_KEY_NOT_FOUND", f"no ledger key {key_id}")
    if key.status == "active":
        key_rotate(actor=actor, reason=f"revocation of {key_id}")
        key.refresh_from_db()
    key.revoked_at = timezone.now()
    key.revoked_reason = reason
    with signing_key_writes():
        key.save(update_fields=["revoked_at", "revoked_reason"])
    ledger_append(
        type="controlplane.ledger.key.revoked",
        subject=f"ledger-key/{key_id}",
        data={"key_id": key_id, "reason": reason},
        actor=actor,
        reason_codes=["LEDGER_KEY_REVOKED"],
    )
    return key
