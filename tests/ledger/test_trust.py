"""Pinned trust: the trusted-keys file, bundles verified only against it, one bundle extending another."""

from __future__ import annotations

import copy
import json

import pytest

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger import crypto, keys
from controlplane.ledger.bundle import bundle_export, bundle_verify
from controlplane.ledger.merkle import proof_hex
from controlplane.ledger.models import SigningKey
from controlplane.ledger.trust import (
    FORMAT,
    TrustedKeys,
    bundle_extends,
    bundle_verify_pinned,
    trusted_keys_document,
    trusted_keys_export,
    trusted_keys_load,
    trusted_keys_parse,
)
from controlplane.ledger.witness import Witness
from tests.ledger.helpers import append_events
from tests.ledger.proof_helpers import chain_tree, ledger_signed_head, make_key, rechain

pytestmark = pytest.mark.django_db


def _active() -> SigningKey:
    return SigningKey.objects.get(valid_from_seq__isnull=False, valid_until_seq__isnull=True)


def _export(first, last=None) -> dict:
    return json.loads(json.dumps(bundle_export(first=first, last=last)))


def _pinned(witness_keys=()) -> TrustedKeys:
    return trusted_keys_parse(trusted_keys_export(witness_keys=witness_keys))


# --- The trusted-keys file ---------------------------------------------------------------------------


def test_the_document_lists_every_key_with_its_validity_and_loads_back(tmp_path):
    append_events(3)
    first = _active()
    keys.key_rotate(reason="scheduled")
    append_events(2)
    keys.key_revoke(key_id=first.key_id, reason="lost laptop")
    wit = make_key()
    document = trusted_keys_export(witness_keys=[wit.public_key])
    assert document["format"] == FORMAT and document["ledger"] == "controlplane"
    entries = {k["key_id"]: k for k in document["ledger_keys"]}
    assert set(entries) == set(SigningKey.objects.values_list("key_id", flat=True))
    old = entries[first.key_id]
    assert old["valid_from_seq"] == 1 and old["valid_until_seq"] is not None and old["revoked"] is True
    assert [k["valid_from_seq"] for k in document["ledger_keys"]] == sorted(
        k["valid_from_seq"] for k in document["ledger_keys"]
    )
    assert document["witness_keys"] == [{"key_id": wit.key_id, "public_key": wit.public_key}]
    path = tmp_path / "KEYS.json"
    path.write_text(json.dumps(document))
    trusted = trusted_keys_load(path)
    assert trusted.ledger_keys[first.key_id].revoked
    assert trusted.witness_keys == {wit.key_id: wit.public_key}
    assert trusted_keys_document(trusted.ledger_keys.values(), [wit.public_key]) == document


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="something/v1"),
        lambda d: d["ledger_keys"][0].update(public_key=make_key().public_key),
        lambda d: d["ledger_keys"][0].update(public_key="not base64!"),
        lambda d: d["ledger_keys"][0].update(valid_from_seq="1"),
        lambda d: d["ledger_keys"][0].update(valid_until_seq=0),
        lambda d: d["ledger_keys"][0].update(revoked="no"),
        lambda d: d["ledger_keys"].append(dict(d["ledger_keys"][0])),
        lambda d: d["ledger_keys"][0].pop("valid_from_seq"),
        lambda d: d["witness_keys"].append(
            {"key_id": "ed25519:0000000000000000", "public_key": make_key().public_key}
        ),
        lambda d: d.update(ledger=7),
    ],
)
def test_a_malformed_or_inconsistent_trusted_keys_file_is_refused(mutate):
    append_events(1)
    document = trusted_keys_export(witness_keys=[make_key().public_key])
    mutate(document)
    with pytest.raises(ControlPlaneError) as refused:
        trusted_keys_parse(document)
    assert refused.value.code == "LEDGER_TRUSTED_KEYS_MALFORMED"


def test_an_unreadable_file_is_refused(tmp_path):
    with pytest.raises(ControlPlaneError) as refused:
        trusted_keys_load(tmp_path / "missing.json")
    assert refused.value.code == "LEDGER_TRUSTED_KEYS_MALFORMED"
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ControlPlaneError):
        trusted_keys_load(tmp_path / "bad.json")


# --- Bundles against pinned keys ---------------------------------------------------------------------


def test_a_genuine_bundle_verifies_against_the_pinned_keys():
    append_events(5)
    bundle = _export(2, 5)
    result = bundle_verify_pinned(bundle, _pinned())
    assert result.ok and result.count == 4 and result.checkpoints_checked == 1
    assert "pinned" in result.notes[-1]


def test_a_bundle_resigned_with_another_key_pair_verifies_alone_but_not_against_the_pins():
    append_events(5)
    trusted = _pinned()
    attacker = make_key()
    forged = rechain(
        _export(2, 5), attacker.signer, attacker.key_id, change=lambda s, b: b["data"].update(i=99)
    )
    forged["keys"] = [
        {
            "key_id": attacker.key_id,
            "public_key": attacker.public_key,
            "valid_from_seq": 1,
            "valid_until_seq": None,
            "revoked": False,
        }
    ]
    assert bundle_verify(bundle=forged).ok  # the hole: a bundle carries its own trust
    result = bundle_verify_pinned(forged, trusted)
    assert not result.ok and result.failure.code == "LEDGER_KEY_UNTRUSTED"
    assert attacker.key_id in result.failure.detail and result.failure.seq == 2


def test_another_public_key_under_a_pinned_key_id_is_untrusted():
    append_events(5)
    trusted = _pinned()
    key_id = _active().key_id
    attacker = make_key()
    forged = rechain(_export(2, 5), attacker.signer, key_id)
    forged["keys"][0]["public_key"] = attacker.public_key
    assert bundle_verify(bundle=forged).ok
    result = bundle_verify_pinned(forged, trusted)
    assert result.failure.code == "LEDGER_KEY_UNTRUSTED" and "public_key" in result.failure.detail


@pytest.mark.parametrize(
    ("field", "value"), [("valid_from_seq", 1000), ("valid_until_seq", 3), ("revoked", True)]
)
def test_a_validity_in_the_bundle_that_differs_from_the_pin_is_untrusted(field, value):
    append_events(5)
    trusted = _pinned()
    bundle = _export(2, 5)
    bundle["keys"][0][field] = value
    result = bundle_verify_pinned(bundle, trusted)
    assert result.failure.code == "LEDGER_KEY_UNTRUSTED" and field in result.failure.detail
    assert bundle["keys"][0]["key_id"] in result.failure.detail


def test_a_revocation_removed_from_the_bundle_is_untrusted():
    append_events(3)
    first = _active()
    keys.key_rotate(reason="scheduled")
    keys.key_revoke(key_id=first.key_id, reason="compromised")
    trusted = _pinned()
    bundle = _export(1, 3)
    for entry in bundle["keys"]:
        entry["revoked"] = False
    assert bundle_verify(bundle=bundle).ok
    result = bundle_verify_pinned(bundle, trusted)
    assert result.failure.code == "LEDGER_KEY_UNTRUSTED" and first.key_id in result.failure.detail


def test_a_key_the_bundle_uses_but_does_not_list_must_be_pinned():
    append_events(5)
    bundle = _export(2, 5)
    pinned = _pinned()
    bundle["keys"] = []
    assert bundle_verify_pinned(bundle, pinned).ok  # verified with the pinned key
    result = bundle_verify_pinned(bundle, TrustedKeys("controlplane", {}))
    assert result.failure.code == "LEDGER_KEY_UNTRUSTED" and result.failure.seq == 2


def test_tampering_still_fails_against_pinned_keys():
    append_events(5)
    bundle = _export(2, 5)
    bundle["events"][1]["data"] = {"i": 42}
    result = bundle_verify_pinned(bundle, _pinned())
    assert result.failure.code == "LEDGER_HASH_MISMATCH" and result.failure.seq == 3


def test_keys_pinned_for_another_ledger_do_not_verify():
    append_events(2)
    trusted = _pinned()
    result = bundle_verify_pinned(_export(1), TrustedKeys("elsewhere", trusted.ledger_keys))
    assert result.failure.code == "LEDGER_KEY_UNTRUSTED"


def test_malformed_bundles_raise_as_bundle_verify_does():
    with pytest.raises(ControlPlaneError) as refused:
        bundle_verify_pinned({"format": "x"}, TrustedKeys("controlplane", {}))
    assert refused.value.code == "LEDGER_BUNDLE_MALFORMED"
    with pytest.raises(ControlPlaneError) as refused:
        bundle_verify_pinned({"format": "controlplane-ledger-bundle/v1", "range": {}}, TrustedKeys("c", {}))
    assert refused.value.code == "LEDGER_BUNDLE_MALFORMED"


def _with_tree_head(bundle, wit=None):
    head = ledger_signed_head(bundle["range"]["to"])
    if wit is not None:
        head["witnesses"] = [wit.cosign(head)]
    bundle["tree_head"] = head
    return bundle


def test_a_bundle_tree_head_is_checked_against_pinned_ledger_and_witness_keys(tmp_path):
    append_events(5)
    wit = Witness(tmp_path / "w", make_key().private_key)
    bundle = _export(1, 5)
    _with_tree_head(bundle, wit)
    trusted = _pinned([wit.public_key])
    assert bundle_verify_pinned(bundle, trusted, min_witnesses=1).ok
    assert bundle_verify_pinned(bundle, _pinned(), min_witnesses=0).failure.code == "LEDGER_KEY_UNTRUSTED"
    unwitnessed = copy.deepcopy(bundle)
    unwitnessed["tree_head"]["witnesses"] = []
    assert (
        bundle_verify_pinned(unwitnessed, trusted, min_witnesses=1).failure.code == "LEDGER_WITNESS_INVALID"
    )
    wrong_root = copy.deepcopy(bundle)
    wrong_root["tree_head"]["root"] = "ab" * 32
    assert not bundle_verify_pinned(wrong_root, trusted).ok


def test_a_tree_head_whose_root_is_not_the_events_root_is_a_fork():
    append_events(5)
    bundle = _export(1, 5)
    key = crypto.signer_for(_active().key_id)
    from controlplane.ledger.treehead import tree_head_sign, tree_head_statement

    statement = tree_head_statement(seq=5, head_hash=bundle["checkpoint"]["head_hash"], root="cd" * 32)
    bundle["tree_head"] = tree_head_sign(statement, key_id=_active().key_id, signer=key)
    result = bundle_verify_pinned(bundle, _pinned())
    assert result.failure.code == "LEDGER_FORKED"


# --- One bundle extends another ----------------------------------------------------------------------


def test_a_later_bundle_of_the_same_chain_extends_an_earlier_one():
    append_events(5)
    old = _export(1, 5)
    append_events(4)
    trusted = _pinned()
    for new in (_export(1), _export(3), _export(6), _export(5)):
        result = bundle_extends(old, new, trusted=trusted)
        assert result.ok and result.method == "hash chain" and result.through_seq == 5, new["range"]
    assert bundle_extends(old, old).ok


def test_a_rewritten_history_is_found_at_the_first_seq_where_they_part():
    append_events(8)
    key_id = _active().key_id
    signer = crypto.signer_for(key_id)
    honest = _export(1, 8)
    rewritten = rechain(honest, signer, key_id, change=lambda seq, b: seq >= 4 and b["data"].update(i=-1))
    trusted = _pinned()
    assert bundle_verify_pinned(rewritten, trusted).ok  # re-signed with the real key: only the overlap shows
    result = bundle_extends(rewritten, honest, trusted=trusted)
    assert not result.ok and result.failure.code == "LEDGER_FORKED" and result.failure.seq == 4
    assert "seq 4" in result.as_dict()["detail"]


def test_a_newer_bundle_that_ends_earlier_is_a_truncation():
    append_events(8)
    old = _export(1, 8)
    new = _export(1, 5)
    result = bundle_extends(old, new)
    assert result.failure.code == "LEDGER_TRUNCATED" and result.failure.seq == 6
    result = bundle_extends(_export(6, 8), _export(1, 3))
    assert result.failure.code == "LEDGER_TRUNCATED"


def test_a_bundle_that_does_not_verify_is_named():
    append_events(5)
    old, new = _export(1, 3), _export(1, 5)
    new["events"][2]["signature"] = old["events"][0]["signature"]
    result = bundle_extends(old, new)
    assert not result.ok and result.failure.code == "LEDGER_SIGNATURE_INVALID"
    assert result.failure.detail.startswith("newer:")


def test_disjoint_bundles_need_a_consistency_proof_between_their_tree_heads():
    append_events(4)
    old = _with_tree_head(_export(1, 3))
    append_events(6)
    new = _with_tree_head(_export(7, 10))
    no_proof = bundle_extends(old, new)
    assert no_proof.failure.code == "LEDGER_PROOF_INVALID"
    tree, _ = chain_tree()
    proof = proof_hex(tree.consistency_proof(3, 10))
    result = bundle_extends(old, new, consistency_proof=proof)
    assert result.ok and result.method == "consistency"
    new["consistency"] = {"from_size": 3, "proof": proof}
    assert bundle_extends(old, new, trusted=_pinned()).ok
    wrong = bundle_extends(old, new, consistency_proof=proof_hex(tree.consistency_proof(4, 10)))
    assert wrong.failure.code == "LEDGER_FORKED"
    headless_old, headless_new = _export(1, 3), _export(7, 10)
    del headless_old["tree_head"], headless_new["tree_head"]
    without_heads = bundle_extends(headless_old, headless_new, consistency_proof=proof)
    assert without_heads.failure.code == "LEDGER_PROOF_INVALID"
