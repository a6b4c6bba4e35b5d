"""Signed checkpoints: signed tree heads over the chain, cosigned by a witness outside the database.

A checkpoint signs the RFC 9162 tree-head statement (`treehead.py`): the chain's head hash at a seq and
the Merkle root over the event hashes of seq `1..seq`. After the transaction commits, the witness
(`witness.py`, a log outside PostgreSQL under its own key) cosigns the newest checkpoint, given the
consistency proof from the last tree it cosigned (`witness_sync`); with `CONTROLPLANE_WITNESS_URL` the
tree head is POSTed to the external witness as well.

The Merkle tree is kept per process (`chain_merkle_tree`) and extended with the events appended since;
before use it is checked against the chain (the stored hash at its last leaf, which commits to every
event before it), and rebuilt when the chain no longer ends the same way (a rolled-back transaction).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger import crypto
from controlplane.ledger.chain import chain_activate_first_key, chain_signer
from controlplane.ledger.keys import locked_head
from controlplane.ledger.merkle import MerkleTree, event_leaf_hash, proof_hex
from controlplane.ledger.models import Checkpoint, LedgerEvent, SigningKey
from controlplane.ledger.services import ledger_append
from controlplane.ledger.treehead import LEDGER_NAME, tree_head_statement

logger = logging.getLogger(__name__)

_tree_lock = threading.Lock()
_tree: MerkleTree | None = None


def chain_merkle_tree(size: int) -> MerkleTree:
    """The process's Merkle tree over the stored events, holding at least seq `1..size` (read-only).

    The cached tree is checked first: the chain's hash at its last leaf (or at `size`, when smaller) must
    be that leaf's input, else it is rebuilt. Then it is extended with the hashes of the events after it.
    A chain holding fewer than `size` events (or with a gap) is LEDGER_TRUNCATED.
    """
    global _tree
    with _tree_lock:
        tree = _tree
        if tree is not None and tree.size:
            at = min(tree.size, max(size, 1))
            stored = LedgerEvent.objects.filter(seq=at).values_list("hash", flat=True).first()
            if stored is None or event_leaf_hash(stored) != tree.leaf(at - 1):
                tree = None
        if tree is None:
            tree = MerkleTree()
        if tree.size < size:
            hashes = (
                LedgerEvent.objects.filter(seq__gt=tree.size, seq__lte=size)
                .order_by("seq")
                .values_list("hash", flat=True)
            )
            tree.extend(map(event_leaf_hash, hashes.iterator(chunk_size=10_000)))
        _tree = tree
    if tree.size < size:
        raise ControlPlaneError(
            "LEDGER_TRUNCATED", f"a tree of {size} events was asked for; the chain holds {tree.size}"
        )
    return tree


def forget_merkle_tree() -> None:
    """Drop the process's cached tree (tests that rewrite the chain behind it)."""
    global _tree
    with _tree_lock:
        _tree = None


@transaction.atomic
def checkpoint_create(*, actor: str = "system", at_seq: int | None = None) -> Checkpoint:
    """Sign the tree head at the chain head (or an earlier seq) and record that a checkpoint was made.

    Once the transaction commits, the witness cosigns the newest checkpoint (`witness_sync`). Safe to run
    twice: a checkpoint already made at that seq is returned unchanged.
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
    root = chain_merkle_tree(seq).root(seq).hex()
    statement = tree_head_statement(seq=seq, head_hash=head_hash, root=root)
    signature = crypto.b64(chain_signer(head.key_id).sign(canonical_bytes(statement)))
    checkpoint = Checkpoint(
        seq=seq,
        head_hash=head_hash,
        tree_size=seq,
        root=root,
        created_at=timezone.now(),
        key_id=head.key_id,
        signature=signature,
    )
    checkpoint.save()
    ledger_append(
        type="controlplane.ledger.checkpoint.created",
        subject=f"checkpoint/{seq}",
        data={"seq": seq, "head_hash": head_hash, "tree_size": seq, "root": root, "key_id": head.key_id},
        actor=actor,
    )
    transaction.on_commit(_witness_after_commit)
    return checkpoint


def _witness_after_commit() -> None:
    try:
        witness_sync()
    except ControlPlaneError as exc:  # the checkpoint stands; `ledger verify` reports any disagreement
        logger.error("witness did not cosign the checkpoint: %s: %s", exc.code, exc.detail)


def witness_sync(*, witness: Any = None, post: bool = True) -> dict[str, Any] | None:
    """Have the witness cosign the newest checkpoint (with a Merkle root) it has not seen yet.

    The witness gets the RFC 9162 consistency proof from the last tree it cosigned, and refuses with
    LEDGER_FORKED when the chain does not extend it. With `CONTROLPLANE_WITNESS_URL` (and `post`) the
    tree head is POSTed to the external witness too. Returns the witness record (None with no checkpoint).
    Idempotent: a witness that already holds the newest checkpoint returns its record.
    """
    from controlplane.ledger.witness import witness_default, witness_post

    checkpoint = Checkpoint.objects.exclude(root="").order_by("-seq").first()
    if checkpoint is None:
        return None
    witness = witness or witness_default()
    last = witness.last(LEDGER_NAME)
    if last is not None and last["seq"] >= checkpoint.seq:
        return last
    tree = chain_merkle_tree(checkpoint.seq)
    proof = None if last is None else _consistency(tree, last["tree_size"], checkpoint.seq)
    ledger_key = (
        SigningKey.objects.filter(key_id=checkpoint.key_id).values_list("public_key", flat=True).first()
    )
    tree_head = checkpoint.signed()
    record = witness.cosign(tree_head, consistency_proof=proof, ledger_public_key=ledger_key)
    if post:
        witness_post(tree_head, consistency_proof=proof)
    return record


def _consistency(tree: MerkleTree, old_size: int, new_size: int) -> list[str] | None:
    if old_size > tree.size:
        return None  # the chain is shorter than what the witness cosigned: it will refuse
    return proof_hex(tree.consistency_proof(old_size, new_size))


def checkpoint_witnesses(checkpoint: Checkpoint, *, witness: Any = None) -> list[dict[str, Any]]:
    """The records of the deployment's witness log that cosign exactly this checkpoint's tree head."""
    from controlplane.ledger.witness import witness_default, witness_record_matches

    if not checkpoint.root:
        return []
    try:
        witness = witness or witness_default()
        records = witness.records(LEDGER_NAME)
    except ControlPlaneError:
        return []
    tree_head = checkpoint.signed()
    return [r for r in records if isinstance(r, dict) and witness_record_matches(r, tree_head)]


def checkpoint_tree_head(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint's signed tree head with the witness cosignatures the witness log holds for it."""
    if not checkpoint.root:
        raise ControlPlaneError(
            "LEDGER_PROOF_INVALID", f"checkpoint {checkpoint.seq} predates Merkle tree heads (no root)"
        )
    return {**checkpoint.signed(), "witnesses": checkpoint_witnesses(checkpoint)}
