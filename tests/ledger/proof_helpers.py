"""Helpers for the proof tests: keys made in the test, synthetic chains and signed tree heads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.ledger import crypto
from controlplane.ledger.merkle import MerkleTree
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.treehead import tree_head_for_tree, tree_head_sign


@dataclass
class TestKey:
    private_key: Ed25519PrivateKey
    key_id: str
    public_key: str
    signer: crypto.Signer


def make_key() -> TestKey:
    private_key = Ed25519PrivateKey.generate()
    raw = crypto.public_bytes(private_key)
    return TestKey(private_key, crypto.key_id_for(raw), crypto.b64(raw), crypto.Signer(private_key))


def synthetic_hashes(n: int, salt: bytes = b"") -> list[str]:
    """Hex hashes standing in for a chain of n events (a different salt is a rewritten history)."""
    return [hashlib.sha256(salt + i.to_bytes(8, "big")).hexdigest() for i in range(n)]


def signed_head(tree: MerkleTree, hashes: list[str], size: int, key: TestKey) -> dict:
    """The signed tree head of the first `size` events of `hashes` (whose tree is `tree`)."""
    return tree_head_sign(
        tree_head_for_tree(tree, head_hash=hashes[size - 1], size=size), key_id=key.key_id, signer=key.signer
    )


def chain_tree() -> tuple[MerkleTree, list[str]]:
    """The Merkle tree over the stored chain and its event hashes, in seq order."""
    hashes = list(LedgerEvent.objects.order_by("seq").values_list("hash", flat=True))
    return MerkleTree.from_event_hashes(hashes), hashes


def ledger_signed_head(size: int | None = None) -> dict:
    """A tree head over the stored chain signed with the ledger's own active key."""
    from controlplane.ledger.models import SigningKey

    tree, hashes = chain_tree()
    size = len(hashes) if size is None else size
    active = SigningKey.objects.get(
        valid_from_seq__isnull=False, valid_until_seq__isnull=True, revoked_at=None
    )
    signer = crypto.signer_for(active.key_id)
    statement = tree_head_for_tree(tree, head_hash=hashes[size - 1], size=size)
    return tree_head_sign(statement, key_id=active.key_id, signer=signer)


def rechain(bundle: dict, signer, key_id: str, *, change=None) -> dict:
    """Rewrite a bundle's events, re-hashed, re-linked and re-signed by `signer` as `key_id`, and its
    checkpoint; `change(seq, body)` may alter a signed body first (a rewritten history)."""
    import copy

    from controlplane.kernel.canonical import canonical_bytes
    from controlplane.ledger.models import ENVELOPE_FIELDS

    bundle = copy.deepcopy(bundle)
    bundle.pop("tree_head", None)  # the export's tree head is of the history being rewritten
    previous = bundle["anchor"]["hash"]
    for event in bundle["events"]:
        import orjson

        body = orjson.loads(event["canonical"])
        body["key_id"], body["prev_hash"] = key_id, previous
        if change:
            change(event["seq"], body)
        canonical = canonical_bytes(body).decode()
        event_hash = hashlib.sha256(previous.encode() + canonical.encode()).hexdigest()
        for name in ENVELOPE_FIELDS:
            event[name] = body[name]
        event.update(
            canonical=canonical, hash=event_hash, signature=crypto.b64(signer.sign(bytes.fromhex(event_hash)))
        )
        previous = event_hash
    statement = {
        "ledger": bundle["checkpoint"]["ledger"],
        "seq": bundle["range"]["to"],
        "head_hash": previous,
    }
    bundle["checkpoint"] = {
        **statement,
        "key_id": key_id,
        "signature": crypto.b64(signer.sign(canonical_bytes(statement))),
    }
    return bundle
