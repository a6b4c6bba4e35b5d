"""The holes an auditor found, each closed: a deleted tail, a history rewritten behind a checkpoint (with and
without the checkpoint re-signed), a witness log edited, and a trust store edited behind the key services.

Each tampering runs as the database owner would: raw SQL with the append-only triggers disabled, inside
the test's transaction. Before tree heads, the witness and the key-event check, `verify_chain` passed
every one of these (the tail behind `seq__lte=last`, the rest unchecked).
"""

from __future__ import annotations

import hashlib
import json

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.db import connection

from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger import crypto, keys
from controlplane.ledger.checkpoints import chain_merkle_tree, checkpoint_create, witness_sync
from controlplane.ledger.models import Checkpoint, LedgerEvent, SigningKey
from controlplane.ledger.treehead import tree_head_statement
from controlplane.ledger.verify import KEY_EVENT_TYPES, _check_key_events, key_set_from_events, verify_chain
from controlplane.ledger.witness import witness_default
from tests.ledger.helpers import append_events

pytestmark = pytest.mark.django_db


def _owner_sql(sql: str, params: list, tables=("ledger_ledgerevent",)) -> None:
    """Run SQL as the database owner who switched the append-only triggers off (inside the test)."""
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_update_delete")
        cursor.execute(sql, params)
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_no_update_delete")


def _witnessed_checkpoint(django_capture_on_commit_callbacks) -> Checkpoint:
    """A checkpoint at the head, cosigned by the witness as it is once the transaction commits.

    (`append_events(n)` makes n events after the key's activation at seq 1: the head is then n + 1.)"""
    with django_capture_on_commit_callbacks(execute=True):
        return checkpoint_create()


def _rewrite_from(seq: int, *, new_value: int) -> None:
    """Rewrite event `seq`'s data and re-hash, re-link and re-sign it and every event after it with the real
    ledger key (an owner who also holds the key directory): the chain itself verifies afterwards."""
    rows = list(LedgerEvent.objects.filter(seq__gte=seq).order_by("seq"))
    previous = LedgerEvent.objects.get(seq=seq - 1).hash
    for row in rows:
        body = orjson.loads(row.canonical)
        body["prev_hash"] = previous
        if row.seq == seq:
            body["data"] = {**body["data"], "i": new_value}
        canonical = canonical_bytes(body)
        event_hash = hashlib.sha256(previous.encode() + canonical).hexdigest()
        signature = crypto.b64(crypto.signer_for(row.key_id).sign(bytes.fromhex(event_hash)))
        _owner_sql(
            "UPDATE ledger_ledgerevent SET data = %s::jsonb, canonical = %s, prev_hash = %s, hash = %s, "
            "signature = %s WHERE seq = %s",
            [json.dumps(body["data"]), canonical.decode(), previous, event_hash, signature, row.seq],
        )
        previous = event_hash


def _resign_checkpoints() -> None:
    """Re-sign every stored checkpoint over the rewritten chain (the owner holds the ledger key)."""
    for checkpoint in Checkpoint.objects.all():
        head_hash = LedgerEvent.objects.get(seq=checkpoint.seq).hash
        root = chain_merkle_tree(checkpoint.seq).root(checkpoint.seq).hex()
        statement = tree_head_statement(seq=checkpoint.seq, head_hash=head_hash, root=root)
        signature = crypto.b64(crypto.signer_for(checkpoint.key_id).sign(canonical_bytes(statement)))
        _owner_sql(
            "UPDATE ledger_checkpoint SET head_hash = %s, root = %s, signature = %s WHERE seq = %s",
            [head_hash, root, signature, checkpoint.seq],
            tables=("ledger_checkpoint",),
        )


# --- 1. A deleted tail -------------------------------------------------------------------------------


def test_a_tail_deleted_behind_a_checkpoint_is_a_truncation_naming_its_seq():
    append_events(4)
    checkpoint_create()  # at seq 5; its event is seq 6
    append_events(2)
    assert verify_chain().ok
    _owner_sql("DELETE FROM ledger_ledgerevent WHERE seq >= %s", [5])
    result = verify_chain()
    assert not result.ok
    assert (result.failure.seq, result.failure.code) == (5, "LEDGER_TRUNCATED")
    assert "the chain ends at seq 4" in result.failure.detail


def test_a_chain_deleted_entirely_behind_a_checkpoint_is_a_truncation():
    append_events(2)
    checkpoint_create()
    _owner_sql("DELETE FROM ledger_ledgerevent", [])
    result = verify_chain()
    assert (result.ok, result.failure.code, result.failure.seq) == (False, "LEDGER_TRUNCATED", 3)


def test_a_tail_deleted_with_its_checkpoints_is_found_by_the_witness(django_capture_on_commit_callbacks):
    append_events(4)
    _witnessed_checkpoint(django_capture_on_commit_callbacks)
    assert witness_default().last("controlplane")["seq"] == 5
    _owner_sql("DELETE FROM ledger_checkpoint", [], tables=("ledger_checkpoint",))
    _owner_sql("DELETE FROM ledger_ledgerevent WHERE seq >= %s", [4])
    result = verify_chain()
    assert (result.ok, result.failure.seq, result.failure.code) == (False, 5, "LEDGER_TRUNCATED")
    assert "witness" in result.failure.detail


# --- 2. A history rewritten behind a checkpoint --------------------------------------------------------


def test_a_history_rewritten_behind_a_checkpoint_is_a_fork_at_the_checkpoint():
    append_events(4)
    checkpoint_create()
    _rewrite_from(3, new_value=99)
    result = verify_chain()
    assert not result.ok
    assert (result.failure.seq, result.failure.code) == (5, "LEDGER_FORKED")


def test_a_rewrite_with_resigned_checkpoints_is_a_fork_found_by_the_witness(
    django_capture_on_commit_callbacks,
):
    append_events(4)
    _witnessed_checkpoint(django_capture_on_commit_callbacks)
    _rewrite_from(3, new_value=99)
    _resign_checkpoints()
    result = verify_chain()
    assert not result.ok
    assert (result.failure.seq, result.failure.code) == (5, "LEDGER_FORKED")
    assert "witness" in result.failure.detail


def test_the_witness_refuses_to_cosign_a_rewritten_history(django_capture_on_commit_callbacks):
    append_events(4)
    _witnessed_checkpoint(django_capture_on_commit_callbacks)
    _rewrite_from(3, new_value=99)
    append_events(2)
    checkpoint_create()  # in the test's transaction: the witness has not seen it yet
    with pytest.raises(ControlPlaneError) as refused:
        witness_sync()
    assert refused.value.code == "LEDGER_FORKED"
    assert witness_default().last("controlplane")["seq"] == 5  # nothing was appended


def test_a_checkpoint_whose_signed_root_is_not_the_chains_is_a_fork():
    append_events(3)
    checkpoint = checkpoint_create()
    wrong_root = "ab" * 32
    statement = tree_head_statement(seq=checkpoint.seq, head_hash=checkpoint.head_hash, root=wrong_root)
    signature = crypto.b64(crypto.signer_for(checkpoint.key_id).sign(canonical_bytes(statement)))
    _owner_sql(
        "UPDATE ledger_checkpoint SET root = %s, signature = %s WHERE seq = %s",
        [wrong_root, signature, checkpoint.seq],
        tables=("ledger_checkpoint",),
    )
    result = verify_chain()
    assert (result.failure.seq, result.failure.code) == (4, "LEDGER_FORKED")
    assert "Merkle root" in result.failure.detail


def test_witnessed_checkpoints_verify_and_say_so(django_capture_on_commit_callbacks):
    append_events(2)
    _witnessed_checkpoint(django_capture_on_commit_callbacks)
    append_events(3)
    second = _witnessed_checkpoint(django_capture_on_commit_callbacks)
    records = witness_default().records("controlplane")
    assert [r["seq"] for r in records] == [3, second.seq]
    assert records[1]["consistency_from"] == 3 and records[1]["root"] == second.root
    result = verify_chain()
    assert result.ok and result.checkpoints_checked == 2
    assert "2 witness records agree with the chain" in result.notes


def test_a_record_removed_from_the_witness_log_fails_closed(django_capture_on_commit_callbacks):
    append_events(2)
    _witnessed_checkpoint(django_capture_on_commit_callbacks)
    append_events(2)
    _witnessed_checkpoint(django_capture_on_commit_callbacks)
    path = witness_default().log_path("controlplane")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[1])
    result = verify_chain()
    assert (result.ok, result.failure.code) == (False, "LEDGER_WITNESS_INVALID")


def test_old_checkpoints_without_a_root_still_verify():
    append_events(3)
    head = LedgerEvent.objects.get(seq=3)
    statement = {"ledger": "controlplane", "seq": 3, "head_hash": head.hash}
    Checkpoint(
        seq=3,
        head_hash=head.hash,
        created_at=head.time,
        key_id=head.key_id,
        signature=crypto.b64(crypto.signer_for(head.key_id).sign(canonical_bytes(statement))),
    ).save()
    result = verify_chain()
    assert result.ok and result.checkpoints_checked == 1


def test_witness_verify_checks_the_log_alone(django_capture_on_commit_callbacks, capsys, tmp_path):
    append_events(2)
    _witnessed_checkpoint(django_capture_on_commit_callbacks)
    append_events(2)
    _witnessed_checkpoint(django_capture_on_commit_callbacks)
    call_command("witness", "verify")
    assert "OK 2 witness records" in capsys.readouterr().out
    path = witness_default().log_path("controlplane")
    record = json.loads(path.read_bytes().splitlines()[1])
    record["head_hash"] = "0" * 64
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0] + orjson.dumps(record) + b"\n")
    with pytest.raises(SystemExit) as exited:
        call_command("witness", "verify")
    assert exited.value.code == 1
    assert "LEDGER_WITNESS_INVALID" in capsys.readouterr().err


# --- 3. The trust store against the signed key events --------------------------------------------------


def test_a_key_row_added_behind_the_services_is_unknown():
    append_events(2)
    intruder = crypto.b64(crypto.public_bytes(Ed25519PrivateKey.generate()))
    key_id = crypto.key_id_for(crypto.unb64(intruder))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_signingkey (key_id, algorithm, public_key, created_at, valid_from_seq, "
            "revoked_reason) VALUES (%s, 'ed25519', %s, now(), 1, '')",
            [key_id, intruder],
        )
    result = verify_chain()
    assert (result.ok, result.failure.code) == (False, "LEDGER_KEY_UNKNOWN")
    assert key_id in result.failure.detail


def test_a_widened_validity_is_not_valid():
    append_events(2)
    old = SigningKey.objects.get()
    keys.key_rotate(reason="scheduled")
    append_events(1)
    assert verify_chain().ok
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_signingkey SET valid_until_seq = NULL WHERE key_id = %s", [old.key_id])
    result = verify_chain()
    assert (result.ok, result.failure.code, result.failure.seq) == (False, "LEDGER_KEY_NOT_VALID", 1)
    assert old.key_id in result.failure.detail


def test_a_removed_revocation_is_not_valid():
    append_events(2)
    old = SigningKey.objects.get()
    keys.key_revoke(key_id=old.key_id, reason="leaked")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_signingkey SET revoked_at = NULL WHERE key_id = %s", [old.key_id])
    result = verify_chain()
    assert (result.ok, result.failure.code) == (False, "LEDGER_KEY_NOT_VALID")
    assert "revoked=False" in result.failure.detail and "revoked=True" in result.failure.detail


def test_a_key_row_deleted_behind_the_services_is_unknown():
    append_events(1)
    keys.key_generate()  # a standby key, made by a signed event
    standby = SigningKey.objects.get(valid_from_seq__isnull=True)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM ledger_signingkey WHERE key_id = %s", [standby.key_id])
    result = verify_chain()
    assert (result.ok, result.failure.code) == (False, "LEDGER_KEY_UNKNOWN")


def test_every_key_change_is_a_signed_event_and_the_rebuilt_set_matches():
    append_events(1)
    first = SigningKey.objects.get()
    keys.key_generate()
    keys.key_rotate(reason="scheduled")
    keys.key_revoke(key_id=first.key_id, reason="retired and shredded")
    types = list(
        LedgerEvent.objects.filter(type__startswith="controlplane.ledger.key.").values_list("type", flat=True)
    )
    assert types == [
        "controlplane.ledger.key.activated",
        "controlplane.ledger.key.generated",
        "controlplane.ledger.key.rotated",
        "controlplane.ledger.key.revoked",
    ]
    result = verify_chain()
    assert result.failure.code == "LEDGER_KEY_REVOKED"  # the revoked key's events, as before
    head = LedgerEvent.objects.order_by("-seq").first().seq
    rebuilt = key_set_from_events(
        LedgerEvent.objects.filter(type__in=KEY_EVENT_TYPES)
        .order_by("seq")
        .values_list("seq", "type", "data")
    )
    stored = {
        k.key_id: (k.public_key, k.valid_from_seq, k.valid_until_seq, k.revoked_at is not None)
        for k in SigningKey.objects.all()
    }
    assert {
        key_id: (k["public_key"], k["valid_from_seq"], k["valid_until_seq"], k["revoked"])
        for key_id, k in rebuilt.items()
    } == stored
    assert _check_key_events(head) is None


def test_the_trust_store_refuses_changes_outside_the_key_services():
    append_events(1)
    key = SigningKey.objects.get()
    events = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as refused:
        SigningKey.objects.filter(key_id=key.key_id).update(valid_until_seq=None, valid_from_seq=0)
    assert refused.value.code == "LEDGER_KEY_STORE_GUARDED"
    key.revoked_reason = "nothing"
    with pytest.raises(ControlPlaneError) as refused:
        key.save()
    assert refused.value.code == "LEDGER_KEY_STORE_GUARDED"
    with pytest.raises(ControlPlaneError):
        key.delete()
    with pytest.raises(ControlPlaneError):
        SigningKey.objects.create(key_id="ed25519:0", public_key="x", created_at=key.created_at)
    key.refresh_from_db()
    assert (key.valid_from_seq, key.revoked_reason, SigningKey.objects.count()) == (1, "", 1)
    assert LedgerEvent.objects.count() == events
