"""Pinned trust for offline verification: the key set an auditor keeps, and bundles checked against it.

An export bundle carries the public keys that verify it, so on its own it proves only that it is
internally consistent: anyone can re-sign a rewritten history with a key pair of their own and ship
that. An auditor pins the ledger's keys (and the witnesses' keys) once, in a trusted-keys file
(`trusted_keys_document`), and updates it only from a signed rotation event; `bundle_verify_pinned`
then accepts a bundle only if every key it uses is pinned with exactly the pinned public key and
validity (LEDGER_KEY_UNTRUSTED otherwise) and verifies it with the pinned keys, never the bundle's.

A key id is derived from its public key (`crypto.key_id_for`), so a pinned entry whose id does not match
its public key is refused on load.

`bundle_extends` proves a newer bundle of the same ledger extends an older one: through the hash chain
where their seq ranges overlap or touch (equal hashes at the older bundle's last seq imply equal history
before it), or through an RFC 9162 consistency proof between their tree heads when they do not; it
names the first seq where they part otherwise.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger import crypto
from controlplane.ledger.bundle import FORMAT as BUNDLE_FORMAT
from controlplane.ledger.bundle import bundle_verify
from controlplane.ledger.merkle import MerkleTree, proof_from_hex, verify_consistency
from controlplane.ledger.treehead import LEDGER_NAME, tree_head_check, tree_head_problem
from controlplane.ledger.verify import Failure, KeyInfo, VerifyResult
from controlplane.ledger.witness import witness_record_matches, witness_record_verify

FORMAT = "controlplane-trusted-keys/v1"


@dataclass(frozen=True)
class TrustedKeys:
    """A pinned key set: ledger keys with their validity, and witness public keys by key id."""

    ledger: str
    ledger_keys: dict[str, KeyInfo]
    witness_keys: dict[str, str] = field(default_factory=dict)


def _key_info(key: Any) -> KeyInfo:
    """A KeyInfo from a KeyInfo, a bundle/document entry (dict) or a `SigningKey` row."""
    if isinstance(key, KeyInfo):
        return key
    if isinstance(key, dict):
        return KeyInfo(
            key["key_id"],
            key["public_key"],
            key["valid_from_seq"],
            key["valid_until_seq"],
            bool(key["revoked"]),
        )
    return KeyInfo(
        key.key_id, key.public_key, key.valid_from_seq, key.valid_until_seq, key.revoked_at is not None
    )


def _key_entry(key: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "algorithm": "ed25519",
        "public_key": key.public_key,
        "valid_from_seq": key.valid_from_seq,
        "valid_until_seq": key.valid_until_seq,
        "revoked": key.revoked,
    }


def trusted_keys_document(
    keys: Iterable[Any], witness_keys: Iterable[str] = (), *, ledger: str = LEDGER_NAME
) -> dict[str, Any]:
    """The trusted-keys file an auditor keeps: ledger keys (KeyInfo, `SigningKey` rows or entries) with
    their validity seq ranges and revocation, and witness public keys (base64)."""
    infos = sorted(
        map(_key_info, keys),
        key=lambda k: (k.valid_from_seq is None, k.valid_from_seq or 0, k.key_id),
    )
    witnesses = sorted({crypto.key_id_for(crypto.unb64(pk)): pk for pk in witness_keys}.items())
    return {
        "format": FORMAT,
        "ledger": ledger,
        "ledger_keys": [_key_entry(k) for k in infos],
        "witness_keys": [{"key_id": key_id, "public_key": pk} for key_id, pk in witnesses],
    }


def trusted_keys_export(*, witness_keys: Iterable[str] = ()) -> dict[str, Any]:
    """The deployment's current key set as a trusted-keys document (reads the trust store only)."""
    from controlplane.ledger.models import SigningKey

    return trusted_keys_document(SigningKey.objects.all(), witness_keys)


def _malformed(detail: str) -> ControlPlaneError:
    return ControlPlaneError("LEDGER_TRUSTED_KEYS_MALFORMED", detail)


def _checked_public_key(key_id: Any, public_key: Any) -> None:
    try:
        raw = crypto.unb64(public_key)
    except (ValueError, AttributeError) as exc:
        raise _malformed(f"key {key_id}: the public key is not base64") from exc
    if len(raw) != 32 or crypto.key_id_for(raw) != key_id:
        raise _malformed(f"key {key_id}: the id is not derived from the public key")


def _optional_seq(value: Any) -> bool:
    return value is None or (type(value) is int and value >= 1)


def trusted_keys_parse(document: Any) -> TrustedKeys:
    """A TrustedKeys from a trusted-keys document; anything off raises LEDGER_TRUSTED_KEYS_MALFORMED."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _malformed(f"not a {FORMAT} document")
    ledger_keys: dict[str, KeyInfo] = {}
    witness_keys: dict[str, str] = {}
    try:
        for entry in document["ledger_keys"]:
            key = _key_info(entry)
            _checked_public_key(key.key_id, key.public_key)
            if not (_optional_seq(key.valid_from_seq) and _optional_seq(key.valid_until_seq)):
                raise _malformed(f"key {key.key_id}: validity seqs are positive integers or null")
            if not isinstance(entry["revoked"], bool) or key.key_id in ledger_keys:
                raise _malformed(f"key {key.key_id}: revoked must be true or false, and ids unique")
            ledger_keys[key.key_id] = key
        for entry in document.get("witness_keys", []):
            _checked_public_key(entry["key_id"], entry["public_key"])
            witness_keys[entry["key_id"]] = entry["public_key"]
        ledger = document["ledger"]
    except (KeyError, TypeError) as exc:
        raise _malformed(f"missing or invalid field: {exc}") from exc
    if not isinstance(ledger, str):
        raise _malformed("ledger must be a string")
    return TrustedKeys(ledger, ledger_keys, witness_keys)


def trusted_keys_load(path: Path | str) -> TrustedKeys:
    """Read and check a trusted-keys file."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _malformed(f"cannot read {path}: {exc}") from exc
    return trusted_keys_parse(document)


# --- Witness cosignatures ----------------------------------------------------------------------------


def witness_cosignatures_check(
    tree_head: dict[str, Any], trusted: TrustedKeys, *, min_witnesses: int = 1
) -> Failure | None:
    """At least `min_witnesses` pinned witnesses cosigned exactly this tree head (its `witnesses`)."""
    seq = tree_head["seq"]
    good: set[str] = set()
    records = tree_head.get("witnesses") or []
    if not isinstance(records, list):
        return Failure(seq, "LEDGER_WITNESS_INVALID", "witnesses is not a list of witness records")
    for record in records:
        key_id = record.get("witness_key_id") if isinstance(record, dict) else None
        public_key = trusted.witness_keys.get(key_id) if isinstance(key_id, str) else None
        if public_key is None:
            return Failure(seq, "LEDGER_KEY_UNTRUSTED", f"witness key {key_id} is not pinned")
        if not witness_record_verify(record, public_key) or not witness_record_matches(record, tree_head):
            return Failure(seq, "LEDGER_WITNESS_INVALID", f"the cosignature by {key_id} does not verify")
        good.add(key_id)
    if len(good) < min_witnesses:
        return Failure(
            seq,
            "LEDGER_WITNESS_INVALID",
            f"{len(good)} pinned witness cosignatures, {min_witnesses} required",
        )
    return None


def tree_head_check_pinned(tree_head: Any, trusted: TrustedKeys, *, min_witnesses: int = 1) -> Failure | None:
    """A signed tree head against pinned keys: its ledger key pinned (LEDGER_KEY_UNTRUSTED), its signature
    (LEDGER_CHECKPOINT_MISMATCH) and `min_witnesses` pinned witness cosignatures."""
    problem = tree_head_problem(tree_head)
    if problem:
        seq = tree_head.get("seq") if isinstance(tree_head, dict) else 0
        return Failure(seq if isinstance(seq, int) else 0, "LEDGER_CHECKPOINT_MISMATCH", problem)
    if tree_head["ledger"] != trusted.ledger:
        return Failure(tree_head["seq"], "LEDGER_KEY_UNTRUSTED", f"keys are pinned for {trusted.ledger!r}")
    if tree_head["key_id"] not in trusted.ledger_keys:
        return Failure(
            tree_head["seq"], "LEDGER_KEY_UNTRUSTED", f"ledger key {tree_head['key_id']} is not pinned"
        )
    return tree_head_check(tree_head, trusted.ledger_keys) or witness_cosignatures_check(
        tree_head, trusted, min_witnesses=min_witnesses
    )


# --- Bundles against pinned keys ---------------------------------------------------------------------


def _failed(failure: Failure, notes: list[str] | None = None) -> VerifyResult:
    return VerifyResult(False, 0, None, None, failure, notes=notes or [])


def _untrusted_key(bundle: dict[str, Any], trusted: TrustedKeys) -> Failure | None:
    """The first key the bundle lists or uses that is not pinned exactly as the bundle states it."""
    first = bundle["range"]["from"]
    first_use: dict[str, int] = {}
    for event in bundle["events"]:
        first_use.setdefault(event["key_id"], event["seq"])
    checkpoint = bundle["checkpoint"]
    first_use.setdefault(checkpoint.get("key_id", ""), checkpoint.get("seq", first))
    for entry in bundle["keys"]:
        stated = _key_info(entry)
        pinned = trusted.ledger_keys.get(stated.key_id)
        at = first_use.get(stated.key_id, first)
        if pinned is None:
            return Failure(at, "LEDGER_KEY_UNTRUSTED", f"key {stated.key_id} is not pinned")
        for name in ("public_key", "valid_from_seq", "valid_until_seq", "revoked"):
            if getattr(stated, name) != getattr(pinned, name):
                return Failure(
                    at,
                    "LEDGER_KEY_UNTRUSTED",
                    f"key {stated.key_id}: the bundle's {name} ({getattr(stated, name)!r}) differs from the "
                    f"pinned one ({getattr(pinned, name)!r})",
                )
    for key_id, at in first_use.items():
        if key_id not in trusted.ledger_keys:
            return Failure(at, "LEDGER_KEY_UNTRUSTED", f"key {key_id} is not pinned")
    return None


def bundle_verify_pinned(bundle: Any, trusted: TrustedKeys, *, min_witnesses: int = 0) -> VerifyResult:
    """Verify an export bundle against pinned keys only (never the public keys it carries).

    Every key the bundle lists, or that signs one of its events or its checkpoint, must be pinned with the
    same public key and validity (LEDGER_KEY_UNTRUSTED naming the key); then `bundle.bundle_verify` runs
    with the pinned keys in place of the bundle's. A bundle with a `tree_head` has it checked against the
    pinned ledger and witness keys too (its root recomputed when the bundle starts at seq 1).
    Malformed bundles raise LEDGER_BUNDLE_MALFORMED as `bundle_verify` does.
    """
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        return bundle_verify(bundle=bundle)  # raises LEDGER_BUNDLE_MALFORMED
    try:
        ledger = bundle["checkpoint"].get("ledger")
        failure = _untrusted_key(bundle, trusted)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ControlPlaneError("LEDGER_BUNDLE_MALFORMED", f"missing or invalid field: {exc}") from exc
    if failure is None and ledger != trusted.ledger:
        failure = Failure(
            bundle["range"]["to"], "LEDGER_KEY_UNTRUSTED", f"keys are pinned for {trusted.ledger!r}"
        )
    if failure:
        return _failed(failure)
    pinned = copy.copy(bundle)
    pinned["keys"] = [_key_entry(k) for k in trusted.ledger_keys.values()]
    result = bundle_verify(bundle=pinned)
    if result.ok and "tree_head" in bundle:
        failure = _bundle_tree_head(bundle, trusted, min_witnesses)
        if failure:
            result.ok, result.failure = False, failure
    result.notes.append(f"verified against {len(trusted.ledger_keys)} pinned ledger keys")
    return result


def _bundle_tree_head(bundle: dict[str, Any], trusted: TrustedKeys, min_witnesses: int) -> Failure | None:
    tree_head = bundle["tree_head"]
    failure = tree_head_check_pinned(tree_head, trusted, min_witnesses=min_witnesses)
    if failure:
        return failure
    last = bundle["range"]["to"]
    if tree_head["seq"] != last or tree_head["head_hash"] != bundle["checkpoint"]["head_hash"]:
        return Failure(last, "LEDGER_CHECKPOINT_MISMATCH", "the tree head is not the bundle's checkpoint")
    if bundle["anchor"]["seq"] == 0:
        root = MerkleTree.from_event_hashes(e["hash"] for e in bundle["events"]).root()
        if root.hex() != tree_head["root"]:
            return Failure(
                last, "LEDGER_FORKED", "the tree head's root is not the root of the bundle's events"
            )
    return None


# --- One bundle extends another ----------------------------------------------------------------------


@dataclass
class ExtendsResult:
    ok: bool
    method: str
    through_seq: int | None = None
    failure: Failure | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "method": self.method, "through_seq": self.through_seq}
        if self.failure:
            body.update(failed_seq=self.failure.seq, code=self.failure.code, detail=self.failure.detail)
        return body


def _known_hashes(bundle: dict[str, Any]) -> dict[int, str]:
    hashes = {bundle["anchor"]["seq"]: bundle["anchor"]["hash"]}
    hashes.update((event["seq"], event["hash"]) for event in bundle["events"])
    return hashes


def bundle_extends(
    old: Any,
    new: Any,
    *,
    trusted: TrustedKeys | None = None,
    consistency_proof: list[str] | None = None,
) -> ExtendsResult:
    """Whether bundle `new` extends bundle `old` of the same ledger, or the first seq where they part.

    Each bundle is verified first (against `trusted` when given, else for internal consistency only).
    Where their seqs overlap (the anchor included), the hashes must be equal (LEDGER_FORKED naming the
    first seq that differs) and `new` must reach `old`'s last seq (LEDGER_TRUNCATED otherwise): equal
    chain hashes at a seq mean equal history up to it. Ranges that neither overlap nor touch need both
    bundles' `tree_head`s and an RFC 9162 consistency proof between them (`consistency_proof`, or `new`'s
    `consistency.proof`): LEDGER_FORKED if it fails, LEDGER_PROOF_INVALID if there is none.
    """
    for name, bundle in (("older", old), ("newer", new)):
        result = bundle_verify_pinned(bundle, trusted) if trusted else bundle_verify(bundle=bundle)
        if not result.ok:
            failure = result.failure or Failure(0, "LEDGER_BUNDLE_MALFORMED", "bundle does not verify")
            return ExtendsResult(
                False, "verify", None, Failure(failure.seq, failure.code, f"{name}: {failure.detail}")
            )
    if old["checkpoint"].get("ledger") != new["checkpoint"].get("ledger"):
        return ExtendsResult(
            False, "verify", None, Failure(0, "LEDGER_FORKED", "the bundles are of different ledgers")
        )
    old_last, new_last = old["range"]["to"], new["range"]["to"]
    old_hashes, new_hashes = _known_hashes(old), _known_hashes(new)
    overlap = sorted(set(old_hashes) & set(new_hashes))
    if overlap:
        for seq in overlap:
            if old_hashes[seq] != new_hashes[seq]:
                return ExtendsResult(
                    False, "hash chain", None, Failure(seq, "LEDGER_FORKED", f"the bundles part at seq {seq}")
                )
        if new_last < old_last:
            return ExtendsResult(
                False,
                "hash chain",
                new_last,
                Failure(
                    new_last + 1,
                    "LEDGER_TRUNCATED",
                    f"the newer bundle ends at seq {new_last}, before {old_last}",
                ),
            )
        return ExtendsResult(True, "hash chain", old_last)
    if new_last < old_last:
        failure = Failure(
            new_last + 1, "LEDGER_TRUNCATED", f"the newer bundle ends at seq {new_last}, before {old_last}"
        )
        return ExtendsResult(False, "consistency", None, failure)
    return _extends_by_consistency(old, new, consistency_proof, trusted)


def _extends_by_consistency(
    old: dict[str, Any], new: dict[str, Any], proof: list[str] | None, trusted: TrustedKeys | None
) -> ExtendsResult:
    old_head, new_head = old.get("tree_head"), new.get("tree_head")
    if proof is None and isinstance(new.get("consistency"), dict):
        proof = new["consistency"].get("proof")
    old_last = old["range"]["to"]
    if not isinstance(old_head, dict) or not isinstance(new_head, dict) or proof is None:
        return ExtendsResult(
            False,
            "consistency",
            None,
            Failure(
                old_last + 1,
                "LEDGER_PROOF_INVALID",
                "the bundles do not overlap and no tree heads with a consistency proof link them",
            ),
        )
    for bundle, head in ((old, old_head), (new, new_head)):
        last = bundle["range"]["to"]
        problem = tree_head_problem(head)
        if problem or head["seq"] != last or head["head_hash"] != bundle["checkpoint"]["head_hash"]:
            failure = Failure(
                last, "LEDGER_CHECKPOINT_MISMATCH", "a tree head is not its bundle's checkpoint"
            )
            return ExtendsResult(False, "consistency", None, failure)
        # Pinned bundles had their tree heads checked by `bundle_verify_pinned`; otherwise the bundle's keys.
        failure = (
            None if trusted else tree_head_check(head, {k["key_id"]: _key_info(k) for k in bundle["keys"]})
        )
        if failure:
            return ExtendsResult(False, "consistency", None, failure)
    try:
        nodes = proof_from_hex(proof)
        ok = verify_consistency(
            old_head["tree_size"],
            new_head["tree_size"],
            bytes.fromhex(old_head["root"]),
            bytes.fromhex(new_head["root"]),
            nodes,
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        return ExtendsResult(
            False,
            "consistency",
            None,
            Failure(
                old_last,
                "LEDGER_FORKED",
                f"tree size {new_head['tree_size']} does not extend tree size {old_head['tree_size']}",
            ),
        )
    return ExtendsResult(True, "consistency", old_last)
