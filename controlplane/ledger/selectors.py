"""Reads of the ledger that pages show: one stored event checked by the chain verifier itself, and the
Merkle proofs (receipts, consistency) that the API, the CLI and the trace explorer hand to outsiders.

The console's event page and the trace explorer (runtime) both show an event's verification step by step;
both read it here, so they say the same thing `manage.py ledger verify` says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.checkpoints import chain_merkle_tree, checkpoint_tree_head
from controlplane.ledger.merkle import proof_hex
from controlplane.ledger.models import GENESIS_HASH, Checkpoint, LedgerEvent
from controlplane.ledger.receipts import receipt_build
from controlplane.ledger.treehead import LEDGER_NAME
from controlplane.ledger.verify import ROW_COLUMNS, KeyInfo, load_keys, verify_rows


@dataclass(frozen=True)
class EventCheck:
    """One verification step as the detail page lists it: "passed", "failed" or "not reached"."""

    label: str
    outcome: str


@dataclass(frozen=True)
class EventVerification:
    ok: bool
    code: str
    detail: str
    checks: list[EventCheck]
    key_status: str
    linked: bool  # False when the predecessor is missing, so the link could not be checked


# The steps `verify_rows` runs, in order, and the reason codes each one reports.
_CHECK_STEPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("prev_hash is the hash of the event before", frozenset({"LEDGER_SEQ_GAP", "LEDGER_CHAIN_BROKEN"})),
    (
        "hash = SHA-256(prev_hash || canonical), and every column matches the canonical bytes",
        frozenset({"LEDGER_HASH_MISMATCH"}),
    ),
    (
        "signing key is known, unrevoked and valid at this seq",
        frozenset({"LEDGER_KEY_UNKNOWN", "LEDGER_KEY_REVOKED", "LEDGER_KEY_NOT_VALID"}),
    ),
    ("Ed25519 signature over the hash verifies", frozenset({"LEDGER_SIGNATURE_INVALID"})),
)


def event_verify(
    *,
    event: LedgerEvent,
    prev_hashes: dict[int, str] | None = None,
    keys: dict[str, KeyInfo] | None = None,
) -> EventVerification:
    """Verify one stored event with the chain verifier itself (`verify_rows` over a one-row iterable).

    Verifying many events (a trace), pass the predecessors' hashes (seq -> hash) and the loaded keys, so
    each event costs no query.
    """
    row = {name: getattr(event, name) for name in ROW_COLUMNS}
    for name in ("reason_codes", "data", "provenance"):
        row[name] = orjson.dumps(row[name])  # the verifier reads JSON columns as their stored text
    if event.seq == 1:
        expected_prev: str | None = GENESIS_HASH
    elif prev_hashes is not None:
        expected_prev = prev_hashes.get(event.seq - 1)
    else:
        expected_prev = LedgerEvent.objects.filter(seq=event.seq - 1).values_list("hash", flat=True).first()
    keys = load_keys() if keys is None else keys
    failure = verify_rows([row], keys, expected_seq=event.seq, expected_prev_hash=expected_prev).failure
    failed_step = next(
        (i for i, (_, codes) in enumerate(_CHECK_STEPS) if failure and failure.code in codes), None
    )
    checks = []
    for i, (label, _) in enumerate(_CHECK_STEPS):
        if failed_step is not None and i > failed_step:
            outcome = "not reached"
        elif i == failed_step:
            outcome = "failed"
        elif i == 0 and expected_prev is None:
            outcome = "not checked: the previous event is missing"
        else:
            outcome = "passed"
        checks.append(EventCheck(label, outcome))
    key = _key_status(event.key_id, keys)
    return EventVerification(
        ok=failure is None,
        code=failure.code if failure else "",
        detail=failure.detail if failure else "",
        checks=checks,
        key_status=key,
        linked=expected_prev is not None,
    )


def _key_status(key_id: str, keys: dict[str, KeyInfo]) -> str:
    """The key's status as the trust store holds it (active, retired, standby, revoked, or unknown)."""
    key = keys.get(key_id)
    if key is None:
        return "unknown"
    if key.revoked:
        return "revoked"
    if key.valid_from_seq is None:
        return "standby"
    return "active" if key.valid_until_seq is None else "retired"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _tree_checkpoint(seq: int) -> Checkpoint:
    checkpoint = Checkpoint.objects.filter(seq=seq).first()
    if checkpoint is None:
        raise ControlPlaneError("LEDGER_RANGE_INVALID", f"no checkpoint at seq {seq}")
    if not checkpoint.root:
        raise ControlPlaneError(
            "LEDGER_PROOF_INVALID",
            f"checkpoint {seq} predates Merkle tree heads: it has no root to prove against",
        )
    return checkpoint


def event_receipt(*, seq: int, checkpoint_seq: int | None = None) -> dict[str, Any]:
    """The receipt of the event at `seq` (`receipts.receipt_build`) in the tree of checkpoint
    `checkpoint_seq` (default: the newest checkpoint with a Merkle root), with the checkpoint's ledger
    signature and the witness cosignatures, plus the RFC 9162 names of the inclusion proof's fields.

    The caller decides who may see the event (the API restricts it to the principal's tenant).
    """
    if checkpoint_seq is None:
        checkpoint = Checkpoint.objects.exclude(root="").filter(seq__gte=seq).order_by("-seq").first()
        if checkpoint is None:
            raise ControlPlaneError(
                "LEDGER_PROOF_INVALID", f"no checkpoint covers seq {seq} yet (`manage.py ledger checkpoint`)"
            )
    else:
        checkpoint = _tree_checkpoint(checkpoint_seq)
    if seq > checkpoint.seq:
        raise ControlPlaneError(
            "LEDGER_RANGE_INVALID", f"seq {seq} is not in the tree of checkpoint {checkpoint.seq}"
        )
    receipt = receipt_build(
        seq=seq, tree_head=checkpoint_tree_head(checkpoint), tree=chain_merkle_tree(checkpoint.seq)
    )
    # RFC 9162 section 4.12 (InclusionProofDataV2): log_id, tree_size, leaf_index, inclusion_path.
    return {
        **receipt,
        "log_id": LEDGER_NAME,
        "tree_size": checkpoint.seq,
        "inclusion_path": receipt["inclusion_proof"],
    }


def checkpoint_consistency(*, first: int, second: int) -> dict[str, Any]:
    """The RFC 9162 consistency proof (section 4.13, ConsistencyProofDataV2) between the tree heads of
    checkpoints `first` and `second`, with both signed tree heads and their witness cosignatures."""
    if first > second:
        raise ControlPlaneError("LEDGER_RANGE_INVALID", f"checkpoint {first} is after checkpoint {second}")
    older, newer = _tree_checkpoint(first), _tree_checkpoint(second)
    tree = chain_merkle_tree(newer.seq)
    if tree.root(older.seq).hex() != older.root or tree.root(newer.seq).hex() != newer.root:
        raise ControlPlaneError(
            "LEDGER_FORKED", "the chain's Merkle roots differ from the signed checkpoints"
        )
    return {
        "log_id": LEDGER_NAME,
        "tree_size_1": older.seq,
        "tree_size_2": newer.seq,
        "consistency_path": proof_hex(tree.consistency_proof(older.seq, newer.seq)),
        "tree_head_1": checkpoint_tree_head(older),
        "tree_head_2": checkpoint_tree_head(newer),
    }
