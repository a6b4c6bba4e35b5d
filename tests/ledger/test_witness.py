"""The witness outside the database: cosigning only extensions, its log checked alone, an HTTP witness."""

from __future__ import annotations

import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger import crypto, witness
from controlplane.ledger.merkle import MerkleTree, proof_hex
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.witness import (
    Witness,
    witness_chain_check,
    witness_cosign,
    witness_http_answer,
    witness_log_verify,
    witness_post,
    witness_record_verify,
)
from tests.ledger.helpers import append_events, tamper
from tests.ledger.proof_helpers import (
    chain_tree,
    ledger_signed_head,
    make_key,
    signed_head,
    synthetic_hashes,
)


@pytest.fixture
def ledger_key():
    return make_key()


@pytest.fixture
def chain():
    hashes = synthetic_hashes(40)
    return MerkleTree.from_event_hashes(hashes), hashes


@pytest.fixture
def wit(tmp_path):
    return Witness(tmp_path / "witness", make_key().private_key)


def _proof(tree, old, new):
    return proof_hex(tree.consistency_proof(old, new))


def test_first_cosignature_is_written_as_one_json_line(wit, chain, ledger_key):
    tree, hashes = chain
    head = signed_head(tree, hashes, 10, ledger_key)
    record = wit.cosign(head, ledger_public_key=ledger_key.public_key)
    assert record["seq"] == 10 and record["tree_size"] == 10
    assert record["head_hash"] == hashes[9] and record["root"] == tree.root(10).hex()
    assert record["ledger_key_id"] == ledger_key.key_id and record["ledger_signature"] == head["signature"]
    assert record["witness_key_id"] == wit.key_id and record["witness_key_id"] != ledger_key.key_id
    assert record["index"] == 0 and record["prev"] == witness.GENESIS_PREV
    lines = wit.log_path("controlplane").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [record]
    assert stat.S_IMODE(wit.log_path("controlplane").stat().st_mode) == 0o600
    assert witness_record_verify(record, wit.public_key)
    assert wit.last("controlplane") == record


def test_an_extension_with_a_consistency_proof_is_cosigned_and_linked(wit, chain, ledger_key):
    tree, hashes = chain
    first = wit.cosign(signed_head(tree, hashes, 10, ledger_key))
    second = wit.cosign(signed_head(tree, hashes, 25, ledger_key), consistency_proof=_proof(tree, 10, 25))
    assert second["index"] == 1 and second["prev"] == witness.record_hash(first)
    assert second["consistency_from"] == 10 and second["consistency_proof"] == _proof(tree, 10, 25)
    assert wit.records("controlplane") == [first, second]
    result = witness_log_verify(wit.log_path("controlplane"), wit.public_key)
    assert result.ok and result.records == 2 and result.last == second


def test_the_same_tree_head_again_returns_the_record_already_written(wit, chain, ledger_key):
    tree, hashes = chain
    head = signed_head(tree, hashes, 10, ledger_key)
    assert wit.cosign(head) == wit.cosign(head)
    assert len(wit.records("controlplane")) == 1


def test_another_hash_at_the_same_seq_is_a_fork(wit, chain, ledger_key):
    tree, hashes = chain
    wit.cosign(signed_head(tree, hashes, 10, ledger_key))
    forked_hashes = hashes[:5] + synthetic_hashes(35, salt=b"rewritten")
    forked = MerkleTree.from_event_hashes(forked_hashes)
    with pytest.raises(ControlPlaneError) as refused:
        wit.cosign(signed_head(forked, forked_hashes, 10, ledger_key))
    assert refused.value.code == "LEDGER_FORKED" and "seq 10" in refused.value.detail
    assert refused.value.extra == {"seq": 10}
    assert len(wit.records("controlplane")) == 1


def test_an_older_seq_is_refused(wit, chain, ledger_key):
    tree, hashes = chain
    wit.cosign(signed_head(tree, hashes, 20, ledger_key))
    with pytest.raises(ControlPlaneError) as refused:
        wit.cosign(signed_head(tree, hashes, 12, ledger_key))
    assert refused.value.code == "LEDGER_FORKED" and "seq 12" in refused.value.detail


def test_a_larger_tree_needs_a_consistency_proof_that_verifies(wit, chain, ledger_key):
    tree, hashes = chain
    wit.cosign(signed_head(tree, hashes, 10, ledger_key))
    head = signed_head(tree, hashes, 30, ledger_key)
    for proof in (None, [], _proof(tree, 11, 30), ["zz"], [*_proof(tree, 10, 30)[:-1], "00" * 32]):
        with pytest.raises(ControlPlaneError) as refused:
            wit.cosign(head, consistency_proof=proof)
        assert refused.value.code == "LEDGER_FORKED" and "seq 30" in refused.value.detail, proof
    # A history rewritten behind the cosigned head cannot be proven consistent with it.
    forked_hashes = hashes[:3] + synthetic_hashes(37, salt=b"rewritten")
    forked = MerkleTree.from_event_hashes(forked_hashes)
    with pytest.raises(ControlPlaneError) as refused:
        wit.cosign(
            signed_head(forked, forked_hashes, 30, ledger_key), consistency_proof=_proof(forked, 10, 30)
        )
    assert refused.value.code == "LEDGER_FORKED"
    assert len(wit.records("controlplane")) == 1
    wit.cosign(head, consistency_proof=_proof(tree, 10, 30))
    assert len(wit.records("controlplane")) == 2


def test_the_ledger_signature_is_checked_when_the_ledger_key_is_given(wit, chain, ledger_key):
    tree, hashes = chain
    head = signed_head(tree, hashes, 10, ledger_key)
    with pytest.raises(ControlPlaneError) as refused:
        wit.cosign(head, ledger_public_key=make_key().public_key)
    assert refused.value.code == "LEDGER_SIGNATURE_INVALID"
    with pytest.raises(ControlPlaneError) as refused:
        wit.cosign({**head, "tree_size": 11})
    assert refused.value.code == "LEDGER_WITNESS_INVALID"
    assert not wit.log_path("controlplane").exists()


def test_a_witness_refuses_to_extend_a_log_it_did_not_write(tmp_path, chain, ledger_key):
    tree, hashes = chain
    Witness(tmp_path / "w", make_key().private_key).cosign(signed_head(tree, hashes, 5, ledger_key))
    other = Witness(tmp_path / "w", make_key().private_key)
    with pytest.raises(ControlPlaneError) as refused:
        other.cosign(signed_head(tree, hashes, 6, ledger_key), consistency_proof=_proof(tree, 5, 6))
    assert refused.value.code == "LEDGER_WITNESS_INVALID"


# --- The log alone -----------------------------------------------------------------------------------


def _log_of(wit, chain, ledger_key, sizes=(4, 9, 17, 33)):
    tree, hashes = chain
    previous = None
    for size in sizes:
        proof = None if previous is None else _proof(tree, previous, size)
        wit.cosign(signed_head(tree, hashes, size, ledger_key), consistency_proof=proof)
        previous = size
    return wit.log_path("controlplane")


def _rewrite(path, records):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def test_a_good_log_verifies_with_the_ledger_keys_too(wit, chain, ledger_key):
    path = _log_of(wit, chain, ledger_key)
    result = witness_log_verify(path, wit.public_key, ledger_keys={ledger_key.key_id: ledger_key.public_key})
    assert result.ok and result.records == 4 and result.last["seq"] == 33
    assert result.as_dict()["last_seq"] == 33
    unpinned = witness_log_verify(path, wit.public_key, ledger_keys={})
    assert not unpinned.ok and unpinned.failure.code == "LEDGER_KEY_UNTRUSTED" and unpinned.failure.seq == 4
    wrong = witness_log_verify(path, wit.public_key, ledger_keys={ledger_key.key_id: make_key().public_key})
    assert wrong.failure.code == "LEDGER_SIGNATURE_INVALID"


def test_a_changed_record_fails_its_witness_signature(wit, chain, ledger_key):
    path = _log_of(wit, chain, ledger_key)
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    records[2]["head_hash"] = "ab" * 32
    _rewrite(path, records)
    result = witness_log_verify(path, wit.public_key)
    assert not result.ok and result.records == 2
    assert result.failure.code == "LEDGER_WITNESS_INVALID" and result.failure.seq == 17


def test_a_removed_or_reordered_record_is_found(wit, chain, ledger_key):
    path = _log_of(wit, chain, ledger_key)
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    _rewrite(path, [records[0], records[2], records[3]])
    result = witness_log_verify(path, wit.public_key)
    assert result.failure.code == "LEDGER_WITNESS_INVALID" and result.failure.seq == 17
    _rewrite(path, [records[1], records[0]])
    assert witness_log_verify(path, wit.public_key).failure.code == "LEDGER_WITNESS_INVALID"


def test_a_cosigned_record_that_does_not_extend_is_a_fork(wit, chain, ledger_key):
    path = _log_of(wit, chain, ledger_key, sizes=(4, 9))
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    # A witness key holder appending a well-signed record whose tree does not extend the last one.
    tree, hashes = chain
    forked_hashes = synthetic_hashes(40, salt=b"other")
    forked = MerkleTree.from_event_hashes(forked_hashes)
    bad = wit._record(signed_head(forked, forked_hashes, 20, ledger_key), records[-1], _proof(forked, 9, 20))
    _rewrite(path, [*records, bad])
    result = witness_log_verify(path, wit.public_key)
    assert not result.ok and result.failure.code == "LEDGER_FORKED" and result.failure.seq == 20
    backwards = wit._record(signed_head(tree, hashes, 6, ledger_key), records[-1], [])
    _rewrite(path, [*records, backwards])
    result = witness_log_verify(path, wit.public_key)
    assert result.failure.code == "LEDGER_FORKED" and result.failure.seq == 6


def test_another_witness_key_or_garbage_fails(wit, chain, ledger_key, tmp_path):
    path = _log_of(wit, chain, ledger_key)
    assert witness_log_verify(path, make_key().public_key).failure.code == "LEDGER_WITNESS_INVALID"
    with path.open("ab") as handle:
        handle.write(b"{not json\n")
    result = witness_log_verify(path, wit.public_key)
    assert result.records == 4 and result.failure.code == "LEDGER_WITNESS_INVALID"
    missing = witness_log_verify(tmp_path / "absent.jsonl", wit.public_key)
    assert not missing.ok and missing.failure.code == "LEDGER_WITNESS_INVALID"


# --- The deployment's witness and its key ------------------------------------------------------------


def test_in_development_the_witness_key_is_generated_beside_the_log(settings, tmp_path, chain, ledger_key):
    settings.CONTROLPLANE_WITNESS_DIR = tmp_path / "wd"
    settings.CONTROLPLANE_LEDGER_AUTOGENERATE_KEY = True
    tree, hashes = chain
    record = witness_cosign(signed_head(tree, hashes, 3, ledger_key))
    key_file = tmp_path / "wd" / "witness.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = witness.witness_default()
    assert again.key_id == record["witness_key_id"]
    assert witness_log_verify(tmp_path / "wd" / "controlplane.jsonl", again.public_key).ok


def test_the_witness_key_comes_from_the_environment(settings, tmp_path, monkeypatch):
    settings.CONTROLPLANE_WITNESS_DIR = tmp_path / "wd"
    key = make_key()
    monkeypatch.setenv("CONTROLPLANE_WITNESS_KEY", crypto.b64(crypto.seed_bytes(key.private_key)))
    assert witness.witness_default().key_id == key.key_id
    assert not (tmp_path / "wd" / "witness.key").exists()


def test_without_a_key_outside_development_the_witness_is_unavailable(settings, tmp_path, monkeypatch):
    settings.CONTROLPLANE_WITNESS_DIR = tmp_path / "wd"
    settings.CONTROLPLANE_LEDGER_AUTOGENERATE_KEY = False
    monkeypatch.delenv("CONTROLPLANE_WITNESS_KEY", raising=False)
    with pytest.raises(ControlPlaneError) as refused:
        witness.witness_default()
    assert refused.value.code == "LEDGER_WITNESS_UNAVAILABLE"


def test_the_default_directory_is_var_witness(settings):
    if hasattr(settings, "CONTROLPLANE_WITNESS_DIR"):
        del settings.CONTROLPLANE_WITNESS_DIR
    assert witness.witness_dir() == settings.BASE_DIR / "var" / "witness"


# --- The witness against the stored chain ------------------------------------------------------------


@pytest.mark.django_db
def test_a_deleted_tail_or_a_rewritten_event_disagrees_with_the_witness(wit):
    append_events(6)
    record = wit.cosign(ledger_signed_head())
    tree, hashes = chain_tree()
    head, cut = len(hashes), len(hashes) - 2

    def hash_at(seq):
        return LedgerEvent.objects.filter(seq=seq).values_list("hash", flat=True).first()

    assert witness_chain_check(record, head_seq=head, hash_at=hash_at, root_at=tree.root) is None
    tamper("DELETE FROM ledger_ledgerevent WHERE seq > %s", [cut])
    failure = witness_chain_check(record, head_seq=cut, hash_at=hash_at)
    assert failure.code == "LEDGER_TRUNCATED" and failure.seq == head
    assert witness_chain_check(record, head_seq=None, hash_at=hash_at).code == "LEDGER_TRUNCATED"
    earlier = {**record, "seq": cut, "head_hash": hashes[cut - 1], "root": tree.root(cut).hex()}
    assert witness_chain_check(earlier, head_seq=cut, hash_at=hash_at, root_at=tree.root) is None
    assert witness_chain_check(earlier, head_seq=cut, hash_at=hash_at, root_at=lambda _: b"x").code == (
        "LEDGER_FORKED"
    )
    tamper("UPDATE ledger_ledgerevent SET hash = %s WHERE seq = %s", ["ab" * 32, cut])
    failure = witness_chain_check(earlier, head_seq=cut, hash_at=hash_at)
    assert failure.code == "LEDGER_FORKED" and failure.seq == cut


@pytest.mark.django_db
def test_the_witness_cosigns_the_ledger_tree_heads_as_the_chain_grows(wit):
    from controlplane.ledger.models import SigningKey

    append_events(3)
    wit.cosign(ledger_signed_head())
    first = wit.last("controlplane")["tree_size"]
    append_events(4)
    tree, _ = chain_tree()
    record = wit.cosign(ledger_signed_head(), consistency_proof=_proof(tree, first, tree.size))
    assert record["seq"] == tree.size == first + 4
    keys = {k.key_id: k.public_key for k in SigningKey.objects.all()}
    assert witness_log_verify(wit.log_path("controlplane"), wit.public_key, ledger_keys=keys).ok


# --- An external witness over HTTP -------------------------------------------------------------------


@pytest.fixture
def external(tmp_path):
    """A real HTTP witness on 127.0.0.1 serving `witness_http_answer` from a thread."""
    remote = Witness(tmp_path / "remote", make_key().private_key)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            status, body = witness_http_answer(remote, self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield remote, f"http://127.0.0.1:{server.server_address[1]}/cosign"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_posting_to_an_external_witness_returns_its_checked_cosignature(external, chain, ledger_key):
    remote, url = external
    tree, hashes = chain
    first = witness_post(
        signed_head(tree, hashes, 8, ledger_key), url=url, witness_public_key=remote.public_key
    )
    assert first["seq"] == 8 and witness_record_verify(first, remote.public_key)
    second = witness_post(
        signed_head(tree, hashes, 16, ledger_key),
        consistency_proof=_proof(tree, 8, 16),
        url=url,
        witness_public_key=remote.public_key,
    )
    assert second["index"] == 1
    assert witness_log_verify(remote.log_path("controlplane"), remote.public_key).records == 2


def test_the_external_witness_refusing_a_fork_is_a_fork(external, chain, ledger_key):
    remote, url = external
    tree, hashes = chain
    witness_post(signed_head(tree, hashes, 8, ledger_key), url=url, witness_public_key=remote.public_key)
    with pytest.raises(ControlPlaneError) as refused:
        witness_post(signed_head(tree, hashes, 16, ledger_key), url=url, witness_public_key=remote.public_key)
    assert refused.value.code == "LEDGER_FORKED" and "seq 16" in refused.value.detail


def test_an_answer_from_an_unpinned_witness_key_is_refused(external, chain, ledger_key):
    _, url = external
    tree, hashes = chain
    with pytest.raises(ControlPlaneError) as refused:
        witness_post(
            signed_head(tree, hashes, 8, ledger_key), url=url, witness_public_key=make_key().public_key
        )
    assert refused.value.code == "LEDGER_WITNESS_INVALID"


def test_an_unreachable_or_unconfigured_external_witness(settings, chain, ledger_key):
    tree, hashes = chain
    head = signed_head(tree, hashes, 8, ledger_key)
    settings.CONTROLPLANE_WITNESS_URL = ""
    assert witness_post(head) is None
    with pytest.raises(ControlPlaneError) as refused:
        witness_post(head, url="http://127.0.0.1:9/", witness_public_key=make_key().public_key, timeout=2)
    assert refused.value.code == "LEDGER_WITNESS_UNAVAILABLE"
    with pytest.raises(ControlPlaneError) as refused:
        witness_post(head, url="file:///etc/passwd", witness_public_key=make_key().public_key)
    assert refused.value.code == "LEDGER_WITNESS_UNAVAILABLE"


def test_the_http_answer_refuses_a_body_that_is_not_a_request(wit):
    status, body = witness_http_answer(wit, b"[]")
    assert status == 400 and orjson.loads(body)["code"] == "VALIDATION_FAILED"
    status, body = witness_http_answer(wit, orjson.dumps({"tree_head": {"seq": 1}}))
    assert status == 409 and orjson.loads(body)["code"] == "LEDGER_WITNESS_INVALID"
    assert not os.path.exists(wit.log_path("controlplane"))
