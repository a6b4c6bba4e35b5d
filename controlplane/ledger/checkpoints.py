"""Signed checkpoints: a signature over the chain head at a seq, which an auditor holding an exported
copy can compare with the chain to detect a rewritten history."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger import crypto
from controlplane.ledger.chain import chain_activate_first_key, chain_signer
from controlplane.ledger.keys import locked_head
from controlplane.ledger.models import Checkpoint, LedgerEvent, checkpoint_statement
from controlplane.ledger.services import ledger_append


@transaction.atomic
def checkpoint_create(*, actor: str = "system", at_seq: int | None = None) -> Checkpoint:
    """Sign the chain head (or an earlier seq) and record that a checkpoint was made.

    Safe to run twice: a checkpoint already made at that seq is returned unchanged.
    """
    head = locked_head()
    if head.key_id is None:
        head = chain_activate_first_key(head)
    seq = head.seq if at_seq is None else at_seq
    if seq < 1 or seq > head.seq:
        raise ControlPlaneError("LEDGER_RANGE_INVALID", f"no event at seq {seq}")
    existing = Checkpoint.objects.filter(seq=seq).first()
    if existing:
        return existing
    head_hash = LedgerEvent.objects.values_list("hash", flat=True).get(seq=seq)
    private_key = chain_signer(head.key_id)
    signature = crypto.b64(private_key.sign(canonical_bytes(checkpoint_statement(seq, head_hash))))
    checkpoint = Checkpoint(
        seq=seq, head_hash=head_hash, created_at=timezone.now(), key_id=head.key_id, signature=signature
    )
    checkpoint.save()
    ledger_append(
        type="controlplane.ledger.checkpoint.created",
        subject=f"checkpoint/{seq}",
        data={"seq": seq, "head_hash": head_hash, "key_id": head.key_id},
        actor=actor,
    )
    return checkpoint
