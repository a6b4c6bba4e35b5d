"""Receipts: one event proven by its canonical bytes, an inclusion proof and a pinned, witnessed tree head."""

from __future__ import annotations

import copy
import json

import pytest

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import SigningKey
from controlplane.ledger.receipts import FORMAT, receipt_build, receipt_verify
from controlplane.ledger.treehead import tree_head_sign, tree_head_statement
from controlplane.ledger.trust import TrustedKeys, trusted_keys_export, trusted_keys_parse
from controlplane.ledger.verify import KeyInfo
from controlplane.ledger.witness import Witness
from tests.ledger.helpers import append_events, tamper
from tests.ledger.proof_helpers import chain_tree, ledger_signed_head, make_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def wit(tmp_path):
    return Witness(tmp_path / "witness", make_key().private_key)


@pytest.fixture
def setup(wit):
    """A chain of a dozen events, its witnessed tree head, and the auditor's pinned keys."""
    append_events(11)
    head = ledger_signed_head()
    head["witnesses"] = [wit.cosign(head)]
    trusted = trusted_keys_parse(trusted_keys_export(witness_keys=[wit.public_key]))
    return head, trusted


def _roundtrip(receipt):
    return json.loads(json.dumps(receipt))


def test_every_event_gets_a_receipt_that_verifies_without_the_database(setup, django_db_blocker):
    head, trusted = setup
    receipts = [_roundtrip(receipt_build(seq=seq, tree_head=head)) for seq in range(1, head["tree_size"] + 1)]
    with django_db_blocker.block():
        for receipt in receipts:
            result = receipt_verify(receipt, trusted)
            assert result.ok, result.as_dict()
            assert result.seq == receipt["seq"] and result.as_dict()["ok"]
    assert receipts[4]["format"] == FORMAT and receipts[4]["leaf_index"] == 4
    assert receipts[4]["event"]["seq"] == 5 and len(receipts[4]["inclusion_proof"]) == 4


def test_a_receipt_for_an_older_tree_head(setup, wit):
    _, trusted = setup
    older = ledger_signed_head(5)
    tree, _ = chain_tree()
    receipt = _roundtrip(receipt_build(seq=3, tree_head=older, tree=tree))
    assert receipt_verify(receipt, trusted, min_witnesses=0).ok
    assert receipt_verify(receipt, trusted).failure.code == "LEDGER_WITNESS_INVALID"  # never cosigned


def _receipt(setup, seq=4):
    head, trusted = setup
    return _roundtrip(receipt_build(seq=seq, tree_head=head)), trusted


def _flip(hex_text):
    return ("0" if hex_text[0] != "0" else "1") + hex_text[1:]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (
            lambda r: r["event"].update(canonical=r["event"]["canonical"].replace('"test/', '"Test/')),
            "LEDGER_HASH_MISMATCH",
        ),
        (lambda r: r["event"].update(data={"i": 99}), "LEDGER_HASH_MISMATCH"),
        (lambda r: r["event"].update(prev_hash="0" * 64), "LEDGER_HASH_MISMATCH"),
        (lambda r: r["event"].update(hash=_flip(r["event"]["hash"])), "LEDGER_HASH_MISMATCH"),
        (lambda r: r["event"].update(signature=r["tree_head"]["signature"]), "LEDGER_SIGNATURE_INVALID"),
        (lambda r: r["inclusion_proof"].__setitem__(1, _flip(r["inclusion_proof"][1])), "RECEIPT_INVALID"),
        (lambda r: r["inclusion_proof"].pop(), "RECEIPT_INVALID"),
        (lambda r: r["inclusion_proof"].append("00" * 32), "RECEIPT_INVALID"),
        (lambda r: r["inclusion_proof"].append("zz"), "RECEIPT_INVALID"),
        (lambda r: r.update(seq=5, leaf_index=4), "RECEIPT_INVALID"),
        (lambda r: r.update(leaf_index=2), "RECEIPT_INVALID"),
        (lambda r: r["tree_head"].update(root=_flip(r["tree_head"]["root"])), "LEDGER_CHECKPOINT_MISMATCH"),
        (
            lambda r: r["tree_head"].update(tree_size=r["tree_head"]["tree_size"] + 1),
            "RECEIPT_INVALID",
        ),
        (
            lambda r: r["tree_head"].update(
                seq=r["tree_head"]["seq"] + 1, tree_size=r["tree_head"]["seq"] + 1
            ),
            "LEDGER_CHECKPOINT_MISMATCH",
        ),
        (lambda r: r["tree_head"].update(witnesses=[]), "LEDGER_WITNESS_INVALID"),
        (
            lambda r: r["tree_head"]["witnesses"][0].update(time="2020-01-01T00:00:00.000000Z"),
            "LEDGER_WITNESS_INVALID",
        ),
        (lambda r: r["tree_head"]["witnesses"][0].update(witness_key_id="ed25519:0"), "LEDGER_KEY_UNTRUSTED"),
        (lambda r: r.update(format="other"), "RECEIPT_INVALID"),
        (lambda r: r.pop("event"), "RECEIPT_INVALID"),
        (lambda r: r["event"].pop("canonical"), "RECEIPT_INVALID"),
        (lambda r: r.update(inclusion_proof=None), "RECEIPT_INVALID"),
        (lambda r: r.update(tree_head="x"), "RECEIPT_INVALID"),
        (lambda r: r["event"].update(canonical="not json"), "LEDGER_HASH_MISMATCH"),
    ],
)
def test_a_changed_receipt_fails_with_its_reason(setup, mutate, code):
    receipt, trusted = _receipt(setup)
    assert receipt_verify(receipt, trusted).ok
    mutate(receipt)
    result = receipt_verify(receipt, trusted)
    assert not result.ok and result.failure.code == code, result.as_dict()


def test_a_receipt_for_the_head_event_binds_it_to_the_head_hash(setup):
    head, trusted = setup
    receipt = _roundtrip(receipt_build(seq=head["tree_size"], tree_head=head))
    assert receipt["inclusion_proof"] and receipt_verify(receipt, trusted).ok


def test_keys_that_are_not_pinned_are_untrusted(setup):
    receipt, trusted = _receipt(setup)
    assert receipt_verify(receipt, TrustedKeys("controlplane", {}, trusted.witness_keys)).failure.code == (
        "LEDGER_KEY_UNTRUSTED"
    )
    attacker = make_key()
    statement = tree_head_statement(
        seq=receipt["tree_head"]["seq"],
        head_hash=receipt["tree_head"]["head_hash"],
        root=receipt["tree_head"]["root"],
    )
    forged = copy.deepcopy(receipt)
    forged["tree_head"] = {
        **tree_head_sign(statement, key_id=attacker.key_id, signer=attacker.signer),
        "witnesses": [],
    }
    result = receipt_verify(forged, trusted, min_witnesses=0)
    assert result.failure.code == "LEDGER_KEY_UNTRUSTED" and attacker.key_id in result.failure.detail
    unwitnessed = TrustedKeys("controlplane", trusted.ledger_keys, {})
    result = receipt_verify(receipt, unwitnessed)
    assert result.failure.code == "LEDGER_KEY_UNTRUSTED"  # the receipt's witness is not pinned
    bare = copy.deepcopy(receipt)
    bare["tree_head"]["witnesses"] = []
    result = receipt_verify(bare, unwitnessed)
    assert result.ok and "ledger key alone" in result.notes[0]


def test_a_pinned_key_not_valid_at_the_events_seq(setup):
    receipt, trusted = _receipt(setup)
    key_id = receipt["event"]["key_id"]
    key = trusted.ledger_keys[key_id]
    narrowed = {**trusted.ledger_keys, key_id: KeyInfo(key_id, key.public_key, 5, None, False)}
    result = receipt_verify(receipt, TrustedKeys("controlplane", narrowed, trusted.witness_keys))
    assert result.failure.code == "LEDGER_KEY_NOT_VALID"
    revoked = {**trusted.ledger_keys, key_id: KeyInfo(key_id, key.public_key, 1, None, True)}
    result = receipt_verify(receipt, TrustedKeys("controlplane", revoked, trusted.witness_keys))
    assert result.failure.code == "LEDGER_KEY_REVOKED"


@pytest.mark.parametrize("garbage", [None, [], "receipt", {"format": FORMAT}, {"format": FORMAT, "seq": "1"}])
def test_garbage_is_refused_without_raising(setup, garbage):
    _, trusted = setup
    assert receipt_verify(garbage, trusted).failure.code == "RECEIPT_INVALID"


def test_building_needs_the_tree_head_to_describe_the_stored_chain(setup):
    head, _ = setup
    size = head["tree_size"]
    key = SigningKey.objects.get(valid_until_seq__isnull=True, valid_from_seq__isnull=False)
    from controlplane.ledger import crypto

    signer = crypto.signer_for(key.key_id)
    with pytest.raises(ControlPlaneError) as refused:
        receipt_build(seq=size + 1, tree_head=head)
    assert refused.value.code == "LEDGER_RANGE_INVALID"
    other_root = tree_head_sign(
        tree_head_statement(seq=size, head_hash=head["head_hash"], root="ab" * 32),
        key_id=key.key_id,
        signer=signer,
    )
    with pytest.raises(ControlPlaneError) as refused:
        receipt_build(seq=2, tree_head=other_root)
    assert refused.value.code == "LEDGER_FORKED"
    with pytest.raises(ControlPlaneError) as refused:
        receipt_build(seq=2, tree_head={"seq": 1})
    assert refused.value.code == "RECEIPT_INVALID"
    tamper("DELETE FROM ledger_ledgerevent WHERE seq > %s", [size - 3])
    with pytest.raises(ControlPlaneError) as refused:
        receipt_build(seq=2, tree_head=head)
    assert refused.value.code == "LEDGER_TRUNCATED" and str(size) in refused.value.detail
