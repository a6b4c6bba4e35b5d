"""Self-verifying export bundles: a seq range of events, a signed checkpoint at its end, public keys.

`manage.py ledger export --from A --to B` writes one; `manage.py ledger verify --bundle FILE` checks it
with nothing but the file: every event against its canonical bytes, hash, link and signature, and the
last event against the signed checkpoint. An auditor who keeps the checkpoint can later detect a
rewritten history. The checkpoint is a signed tree head (Merkle root included); `tree_head` repeats it
with the witness cosignatures the witness log holds for it. On its own a bundle proves only internal
consistency: `trust.bundle_verify_pinned` checks it against the keys an auditor pinned.
"""

from __future__ import annotations

from typing import Any

import orjson

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.checkpoints import checkpoint_create, checkpoint_tree_head
from controlplane.ledger.models import GENESIS_HASH, LedgerEvent, SigningKey
from controlplane.ledger.verify import (
    ROW_COLUMNS,
    Failure,
    KeyInfo,
    VerifyResult,
    _select_rows,
    combine,
    verify_checkpoint,
    verify_rows,
)

FORMAT = "controlplane-ledger-bundle/v1"


def bundle_export(*, first: int, last: int | None = None, actor: str = "system") -> dict[str, Any]:
    """Build a bundle for seq `first..last` (default: the head), checkpointing `last` if needed."""
    head = LedgerEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    last = head if last is None else last
    if head is None or first < 1 or last is None or last < first or last > head:
        raise ControlPlaneError("LEDGER_RANGE_INVALID", f"cannot export {first}..{last} (head is {head})")
    checkpoint = checkpoint_create(actor=actor, at_seq=last)
    anchor_hash = (
        GENESIS_HASH if first == 1 else LedgerEvent.objects.values_list("hash", flat=True).get(seq=first - 1)
    )
    events = list(_select_rows(first, last))
    for event in events:
        for name in ("reason_codes", "data", "provenance"):
            event[name] = orjson.loads(event[name])
        event["time"] = orjson.loads(event["canonical"])["time"]
    key_ids = {e["key_id"] for e in events} | {checkpoint.key_id}
    keys = [
        {
            "key_id": k.key_id,
            "public_key": k.public_key,
            "valid_from_seq": k.valid_from_seq,
            "valid_until_seq": k.valid_until_seq,
            "revoked": k.revoked_at is not None,
        }
        for k in SigningKey.objects.filter(key_id__in=key_ids)
    ]
    return {
        "format": FORMAT,
        "range": {"from": first, "to": last},
        "anchor": {"seq": first - 1, "hash": anchor_hash},
        "events": events,
        "checkpoint": checkpoint.signed(),
        "keys": keys,
        **({"tree_head": checkpoint_tree_head(checkpoint)} if checkpoint.root else {}),
    }


def _malformed(detail: str) -> ControlPlaneError:
    return ControlPlaneError("LEDGER_BUNDLE_MALFORMED", detail)


def bundle_verify(*, bundle: Any) -> VerifyResult:
    """Check a bundle offline. Malformed input raises LEDGER_BUNDLE_MALFORMED; tampering fails the result."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise _malformed(f"not a {FORMAT} document")
    try:
        first, last = int(bundle["range"]["from"]), int(bundle["range"]["to"])
        anchor_hash = str(bundle["anchor"]["hash"])
        checkpoint = bundle["checkpoint"]
        keys = {
            k["key_id"]: KeyInfo(
                k["key_id"], k["public_key"], k["valid_from_seq"], k["valid_until_seq"], bool(k["revoked"])
            )
            for k in bundle["keys"]
        }
        events = bundle["events"]
        rows = [{name: event[name] for name in ROW_COLUMNS} for event in events]
    except (KeyError, TypeError, ValueError) as exc:
        raise _malformed(f"missing or invalid field: {exc}") from exc
    chunk = verify_rows(rows, keys, expected_seq=first, expected_prev_hash=anchor_hash)
    result = combine([chunk])
    if not result.ok:
        return result
    if result.head_seq != last:
        result.ok = False
        result.failure = Failure(
            last, "LEDGER_SEQ_GAP", f"bundle ends at seq {result.head_seq}, range says {last}"
        )
        return result
    statement = {
        "ledger": checkpoint.get("ledger"),
        "seq": checkpoint.get("seq"),
        "head_hash": checkpoint.get("head_hash"),
    }
    if "root" in checkpoint:  # a signed tree head: its signature covers the Merkle tree too
        statement.update(tree_size=checkpoint.get("tree_size"), root=checkpoint.get("root"))
    if statement["seq"] != last:
        result.ok = False
        result.failure = Failure(
            last, "LEDGER_CHECKPOINT_MISMATCH", "checkpoint is not at the end of the range"
        )
        return result
    failure = verify_checkpoint(
        statement, checkpoint.get("key_id", ""), checkpoint.get("signature", ""), keys, result.head_hash
    )
    if failure:
        result.ok, result.failure = False, failure
        return result
    result.checkpoints_checked = 1
    return result
