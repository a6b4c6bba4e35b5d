"""Receipts: prove one event to an outsider without handing over the chain.

A receipt is a self-contained JSON document:

    {"format": "controlplane-ledger-receipt/v1",
     "seq": N, "leaf_index": N - 1,
     "event": {the stored row, as in export bundles: the envelope columns, hash, signature, canonical},
     "inclusion_proof": [hex nodes, RFC 9162 PATH(N - 1, D[tree_size])],
     "tree_head": {ledger, seq, head_hash, tree_size, root, key_id, signature, witnesses: [records]}}

`receipt_verify` needs no database, only the auditor's pinned keys (`controlplane.ledger.trust`):

1. the event's own checks, exactly those of `verify.verify_rows`: SHA-256(prev_hash || canonical) is its
   hash, every column is what the canonical bytes say, and its Ed25519 signature verifies under a pinned
   key valid at its seq (LEDGER_KEY_UNTRUSTED when the key is not pinned);
2. the leaf SHA-256(0x00 || event hash) is at index seq - 1 of the tree head's tree (RFC 9162 2.1.3.2);
3. the tree head is signed by a pinned ledger key and cosigned by pinned witnesses.

`receipt_build` reads the event and the hashes of the events up to the tree head (read-only). The
signed tree head is a parameter: checkpoints do not yet commit to a Merkle root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.merkle import (
    MerkleTree,
    event_leaf_hash,
    proof_from_hex,
    proof_hex,
    verify_inclusion,
)
from controlplane.ledger.treehead import tree_head_problem
from controlplane.ledger.trust import TrustedKeys, tree_head_check_pinned
from controlplane.ledger.verify import ROW_COLUMNS, Failure, verify_rows

FORMAT = "controlplane-ledger-receipt/v1"
_JSON_COLUMNS = ("reason_codes", "data", "provenance")


def receipt_build(*, seq: int, tree_head: dict[str, Any], tree: MerkleTree | None = None) -> dict[str, Any]:
    """The receipt of the event at `seq` in the tree of the signed `tree_head` (read-only).

    `tree` may carry the leaf hashes already (a tree over at least `tree_size` events from seq 1); else
    they are read from the ledger. The tree head must describe the stored chain: a chain shorter than
    its tree is LEDGER_TRUNCATED, another root or head hash LEDGER_FORKED.
    """
    from controlplane.ledger.models import LedgerEvent
    from controlplane.ledger.verify import _select_rows

    problem = tree_head_problem(tree_head)
    if problem:
        raise ControlPlaneError("RECEIPT_INVALID", f"the tree head is malformed: {problem}")
    size = tree_head["tree_size"]
    if not 1 <= seq <= size:
        raise ControlPlaneError("LEDGER_RANGE_INVALID", f"seq {seq} is not in the tree of size {size}")
    if tree is None:
        hashes = LedgerEvent.objects.filter(seq__lte=size).order_by("seq").values_list("hash", flat=True)
        tree = MerkleTree.from_event_hashes(hashes.iterator(chunk_size=10_000))
    if tree.size < size:
        raise ControlPlaneError(
            "LEDGER_TRUNCATED", f"the tree head names {size} events; the chain holds {tree.size}"
        )
    if tree.root(size).hex() != tree_head["root"]:
        raise ControlPlaneError(
            "LEDGER_FORKED", f"the chain's Merkle root at size {size} is not the tree head's"
        )
    rows = list(_select_rows(seq, seq))
    if not rows:
        raise ControlPlaneError("LEDGER_TRUNCATED", f"no event at seq {seq}")
    event = rows[0]
    for name in _JSON_COLUMNS:
        event[name] = orjson.loads(event[name])
    event["time"] = orjson.loads(event["canonical"])["time"]
    if event_leaf_hash(event["hash"]) != tree.leaf(seq - 1):
        raise ControlPlaneError("LEDGER_FORKED", f"the event at seq {seq} is not the tree's leaf {seq - 1}")
    return {
        "format": FORMAT,
        "seq": seq,
        "leaf_index": seq - 1,
        "event": event,
        "inclusion_proof": proof_hex(tree.inclusion_proof(seq - 1, size)),
        "tree_head": tree_head,
    }


@dataclass
class ReceiptResult:
    ok: bool
    seq: int | None
    failure: Failure | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "seq": self.seq, "notes": self.notes}
        if self.failure:
            body.update(failed_seq=self.failure.seq, code=self.failure.code, detail=self.failure.detail)
        return body


def _invalid(seq: Any, detail: str) -> ReceiptResult:
    seq = seq if type(seq) is int else None
    return ReceiptResult(False, seq, Failure(seq or 0, "RECEIPT_INVALID", detail))


def receipt_verify(receipt: Any, trusted: TrustedKeys, *, min_witnesses: int | None = None) -> ReceiptResult:
    """Check a receipt with no database, against pinned keys only.

    `min_witnesses` pinned witness cosignatures are required on the tree head (default: one when the
    trusted keys pin any witness, else none, said in the notes). Never raises on bad input: a malformed
    receipt is RECEIPT_INVALID.
    """
    if not isinstance(receipt, dict) or receipt.get("format") != FORMAT:
        return _invalid(None, f"not a {FORMAT} document")
    seq, event, tree_head = receipt.get("seq"), receipt.get("event"), receipt.get("tree_head")
    if type(seq) is not int or seq < 1 or receipt.get("leaf_index") != seq - 1:
        return _invalid(seq, "seq must be a positive integer and leaf_index seq - 1")
    if not isinstance(event, dict) or any(name not in event for name in ROW_COLUMNS) or event["seq"] != seq:
        return _invalid(seq, "the event is missing columns or is not the receipt's seq")
    if not isinstance(event["hash"], str) or not isinstance(event["prev_hash"], str):
        return _invalid(seq, "the event's hashes are not text")
    try:
        proof = proof_from_hex(receipt.get("inclusion_proof"))
    except (TypeError, ValueError):
        return _invalid(seq, "the inclusion proof is not a list of 32-byte hex nodes")
    problem = tree_head_problem(tree_head)
    if problem:
        return _invalid(seq, f"the tree head is malformed: {problem}")

    # 1. The event: hash, columns, pinned key valid at its seq, signature.
    if event["key_id"] not in trusted.ledger_keys:
        return ReceiptResult(
            False, seq, Failure(seq, "LEDGER_KEY_UNTRUSTED", f"key {event['key_id']} is not pinned")
        )
    try:
        rows = [{name: event[name] for name in ROW_COLUMNS}]
        chunk = verify_rows(
            rows, trusted.ledger_keys, expected_seq=seq, expected_prev_hash=event["prev_hash"]
        )
    except (TypeError, ValueError, AttributeError, orjson.JSONDecodeError) as exc:
        return _invalid(seq, f"the event cannot be checked: {exc}")
    if chunk.failure:
        return ReceiptResult(False, seq, chunk.failure)

    # 3. The tree head: pinned ledger signature and witness cosignatures.
    notes: list[str] = []
    if min_witnesses is None:
        min_witnesses = 1 if trusted.witness_keys else 0
        if not trusted.witness_keys:
            notes.append("no witness key is pinned: the tree head rests on the ledger key alone")
    failure = tree_head_check_pinned(tree_head, trusted, min_witnesses=min_witnesses)
    if failure:
        return ReceiptResult(False, seq, failure, notes)

    # 2. The event's leaf in the tree head's tree.
    size = tree_head["tree_size"]
    if seq > size:
        return _invalid(seq, f"seq {seq} is beyond the tree head's size {size}")
    if seq == size and event["hash"] != tree_head["head_hash"]:
        return _invalid(seq, "the event is the tree's last but not its head hash")
    try:
        leaf = event_leaf_hash(event["hash"])
    except ValueError:
        return _invalid(seq, "the event hash is not 32 bytes of hex")
    if not verify_inclusion(leaf, seq - 1, size, proof, bytes.fromhex(tree_head["root"])):
        return _invalid(seq, f"the inclusion proof of seq {seq} in the tree of size {size} does not verify")
    notes.append(f"event {seq} is in the signed tree of size {size}")
    return ReceiptResult(True, seq, None, notes)
