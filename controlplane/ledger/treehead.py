"""Signed tree heads: what a checkpoint signs once it commits to the Merkle tree of the events.

A tree head extends the checkpoint statement (`{"ledger", "seq", "head_hash"}`) with the RFC 9162 tree
over the events with seq `1..seq`: `tree_size` (always equal to `seq`: seq starts at 1 and has no gaps)
and `root` (the hex Merkle root). The ledger key signs its RFC 8785 bytes, exactly as checkpoints are
signed today, so `verify.verify_checkpoint` checks a tree head's ledger signature unchanged.

A signed tree head is the statement plus `key_id` and `signature` (base64 Ed25519), and optionally
`witnesses`: the witness records (`controlplane.ledger.witness`) that cosigned it.

Model-free: the checkpoint model gains `tree_size` and `root` when the lead wires this in.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from controlplane.kernel.canonical import canonical_bytes
from controlplane.ledger import crypto
from controlplane.ledger.merkle import MerkleTree
from controlplane.ledger.verify import Failure, KeyInfo, verify_checkpoint

LEDGER_NAME = "controlplane"
STATEMENT_FIELDS = ("ledger", "seq", "head_hash", "tree_size", "root")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class SignsBytes(Protocol):
    def sign(self, message: bytes) -> bytes: ...


def tree_head_statement(
    *, seq: int, head_hash: str, root: bytes | str, ledger: str = LEDGER_NAME
) -> dict[str, Any]:
    """The statement a tree head's ledger signature covers (canonicalised before signing)."""
    return {
        "ledger": ledger,
        "seq": seq,
        "head_hash": head_hash,
        "tree_size": seq,
        "root": root.hex() if isinstance(root, bytes) else root,
    }


def tree_head_for_tree(tree: MerkleTree, *, head_hash: str, size: int | None = None) -> dict[str, Any]:
    """The statement for the tree of `size` events (default: all of `tree`) whose last hash is `head_hash`."""
    size = tree.size if size is None else size
    return tree_head_statement(seq=size, head_hash=head_hash, root=tree.root(size))


def tree_head_sign(statement: dict[str, Any], *, key_id: str, signer: SignsBytes) -> dict[str, Any]:
    """A signed tree head: the statement, its key id and the Ed25519 signature of its RFC 8785 bytes."""
    body = tree_head_only(statement)
    return {**body, "key_id": key_id, "signature": crypto.b64(signer.sign(canonical_bytes(body)))}


def tree_head_only(tree_head: dict[str, Any]) -> dict[str, Any]:
    """The signed statement of a (signed) tree head, without key id, signature or cosignatures."""
    return {name: tree_head[name] for name in STATEMENT_FIELDS}


def tree_head_problem(tree_head: Any) -> str | None:
    """What is malformed about a signed tree head, or None."""
    if not isinstance(tree_head, dict):
        return "a tree head is a JSON object"
    missing = [name for name in (*STATEMENT_FIELDS, "key_id", "signature") if name not in tree_head]
    if missing:
        return f"the tree head lacks {', '.join(missing)}"
    seq, size = tree_head["seq"], tree_head["tree_size"]
    if type(seq) is not int or type(size) is not int or seq < 1 or size != seq:
        return "seq must be a positive integer and tree_size equal to it"
    for name in ("head_hash", "root"):
        if not isinstance(tree_head[name], str) or not _HEX64.fullmatch(tree_head[name]):
            return f"{name} must be 64 lowercase hex digits"
    if not all(isinstance(tree_head[name], str) for name in ("ledger", "key_id", "signature")):
        return "ledger, key_id and signature must be strings"
    return None


def tree_head_check(tree_head: Any, keys: dict[str, KeyInfo]) -> Failure | None:
    """Check a signed tree head's form and its ledger signature against `keys` (known and unrevoked)."""
    problem = tree_head_problem(tree_head)
    if problem:
        seq = tree_head.get("seq") if isinstance(tree_head, dict) else None
        return Failure(seq if isinstance(seq, int) else 0, "LEDGER_CHECKPOINT_MISMATCH", problem)
    statement = tree_head_only(tree_head)
    return verify_checkpoint(
        statement, tree_head["key_id"], tree_head["signature"], keys, statement["head_hash"]
    )
