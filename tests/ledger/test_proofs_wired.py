"""Proofs to an outsider, wired in: the proof and consistency endpoints, receipts and trusted keys from the
CLI, and bundles verified against pinned keys or against an older bundle."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from controlplane.ledger.checkpoints import checkpoint_create
from controlplane.ledger.merkle import proof_from_hex, verify_consistency
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.receipts import receipt_verify
from controlplane.ledger.services import ledger_append
from controlplane.ledger.trust import trusted_keys_export, trusted_keys_parse
from controlplane.ledger.witness import witness_default
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.ledger.helpers import append_events
from tests.ledger.proof_helpers import make_key, rechain

pytestmark = pytest.mark.django_db


def _get(client, path, token):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


def _witnessed(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return checkpoint_create()


def _pinned() -> object:
    return trusted_keys_parse(trusted_keys_export(witness_keys=[witness_default().public_key]))


# --- The API -----------------------------------------------------------------------------------------


def test_the_proof_endpoint_returns_a_receipt_that_verifies_against_pinned_keys(
    client, django_capture_on_commit_callbacks
):
    tenant = TenantFactory(slug="acme")
    event = ledger_append(type="controlplane.test.mine", subject="x", data={"n": 1}, tenant="acme")
    append_events(4)
    checkpoint = _witnessed(django_capture_on_commit_callbacks)
    token = token_for(PrincipalFactory(tenant=tenant, capabilities=["ledger.read"]))
    response = _get(client, f"/api/v1/ledger/events/{event.seq}/proof/?checkpoint={checkpoint.seq}", token)
    assert response.status_code == 200
    body = response.json()
    assert (body["log_id"], body["leaf_index"], body["tree_size"]) == (
        "controlplane",
        event.seq - 1,
        checkpoint.seq,
    )
    assert body["inclusion_path"] == body["inclusion_proof"] and len(body["inclusion_path"]) == 3
    assert body["tree_head"]["root"] == checkpoint.root and len(body["tree_head"]["witnesses"]) == 1
    result = receipt_verify(body, _pinned())
    assert result.ok, result.failure
    default = _get(client, f"/api/v1/ledger/events/{event.seq}/proof/", token).json()
    assert default["tree_size"] == checkpoint.seq


def test_a_principal_gets_no_proof_of_another_tenants_event(client):
    mine = TenantFactory(slug="mine")
    TenantFactory(slug="theirs")
    other = ledger_append(type="controlplane.test.theirs", subject="x", data={}, tenant="theirs")
    checkpoint_create()
    token = token_for(PrincipalFactory(tenant=mine, capabilities=["ledger.read"]))
    events = LedgerEvent.objects.count()
    response = _get(client, f"/api/v1/ledger/events/{other.seq}/proof/", token)
    assert response.status_code == 404
    assert LedgerEvent.objects.count() == events


def test_the_proof_endpoint_needs_ledger_read_and_a_checkpoint_with_a_root(client):
    reader = PrincipalFactory(capabilities=["ledger.read"])
    append_events(
        2, tenant=reader.tenant.slug
    )  # the reader's tenant's events (tenant-less ones are platform's)
    token = token_for(reader)
    no_checkpoint = _get(client, "/api/v1/ledger/events/2/proof/", token)
    assert (no_checkpoint.status_code, no_checkpoint.json()["code"]) == (409, "LEDGER_PROOF_INVALID")
    checkpoint_create()
    bad = _get(client, "/api/v1/ledger/events/2/proof/?checkpoint=x", token)
    assert (bad.status_code, bad.json()["code"]) == (400, "VALIDATION_FAILED")
    refused = _get(
        client, "/api/v1/ledger/events/2/proof/", token_for(PrincipalFactory(capabilities=["events.ingest"]))
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "CAPABILITY_MISSING")


def test_the_consistency_endpoint_proves_a_later_tree_extends_an_earlier(client):
    append_events(2)
    first = checkpoint_create()
    append_events(5)
    second = checkpoint_create()
    token = token_for(PrincipalFactory(capabilities=["ledger.read"]))
    response = _get(client, f"/api/v1/ledger/checkpoints/{first.seq}/consistency/{second.seq}/", token)
    assert response.status_code == 200
    body = response.json()
    assert (body["tree_size_1"], body["tree_size_2"]) == (first.seq, second.seq)
    assert verify_consistency(
        first.seq,
        second.seq,
        bytes.fromhex(body["tree_head_1"]["root"]),
        bytes.fromhex(body["tree_head_2"]["root"]),
        proof_from_hex(body["consistency_path"]),
    )
    backwards = _get(client, f"/api/v1/ledger/checkpoints/{second.seq}/consistency/{first.seq}/", token)
    assert (backwards.status_code, backwards.json()["code"]) == (400, "LEDGER_RANGE_INVALID")
    missing = _get(client, f"/api/v1/ledger/checkpoints/{first.seq}/consistency/999/", token)
    assert missing.json()["code"] == "LEDGER_RANGE_INVALID"


# --- The CLI -----------------------------------------------------------------------------------------


def test_receipt_and_verify_receipt_from_the_cli(tmp_path, capsys):
    append_events(3)
    keys_file, receipt_file = tmp_path / "keys.json", tmp_path / "receipt.json"
    call_command("ledger", "trusted-keys", "-o", str(keys_file))
    document = json.loads(keys_file.read_text())
    assert len(document["ledger_keys"]) == 1 and len(document["witness_keys"]) == 1
    call_command("ledger", "receipt", "2", "-o", str(receipt_file))  # makes the checkpoint it needs
    call_command(
        "ledger",
        "verify-receipt",
        str(receipt_file),
        "--trusted-keys",
        str(keys_file),
        "--min-witnesses",
        "0",
    )
    out = capsys.readouterr().out
    assert "receipt of seq 2 in the tree of size 4" in out
    assert "OK receipt of seq 2 verifies against the pinned keys" in out
    receipt = json.loads(receipt_file.read_text())
    receipt["event"]["data"] = {"i": 99}
    receipt_file.write_text(json.dumps(receipt))
    with pytest.raises(SystemExit) as exited:
        call_command("ledger", "verify-receipt", str(receipt_file), "--trusted-keys", str(keys_file))
    assert exited.value.code == 1
    assert "LEDGER_HASH_MISMATCH" in capsys.readouterr().err


def test_bundle_against_pinned_keys_and_the_internal_only_warning(tmp_path, capsys):
    append_events(4)
    keys_file, bundle_file, forged_file = tmp_path / "keys.json", tmp_path / "b.json", tmp_path / "f.json"
    call_command("ledger", "trusted-keys", "-o", str(keys_file))
    call_command("ledger", "export", "--from", "1", "-o", str(bundle_file))
    capsys.readouterr()
    call_command("ledger", "verify", "--bundle", str(bundle_file))
    assert "only internal consistency was checked" in capsys.readouterr().out
    call_command(
        "ledger",
        "verify",
        "--bundle",
        str(bundle_file),
        "--trusted-keys",
        str(keys_file),
        "--min-witnesses",
        "0",
    )
    out = capsys.readouterr().out
    assert out.startswith("OK 5 events verified") and "pinned ledger keys" in out
    attacker = make_key()
    forged_file.write_text(json.dumps(_forged(json.loads(bundle_file.read_text()), attacker)))
    call_command("ledger", "verify", "--bundle", str(forged_file))  # the hole: alone it verifies
    assert "only internal consistency was checked" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        call_command("ledger", "verify", "--bundle", str(forged_file), "--trusted-keys", str(keys_file))
    assert "LEDGER_KEY_UNTRUSTED" in capsys.readouterr().err


def _forged(bundle, attacker):
    forged = rechain(bundle, attacker.signer, attacker.key_id)
    forged["keys"] = [
        {
            "key_id": attacker.key_id,
            "public_key": attacker.public_key,
            "valid_from_seq": 1,
            "valid_until_seq": None,
            "revoked": False,
        }
    ]
    return forged


def test_a_newer_bundle_extends_an_older_one_or_names_where_they_part(tmp_path, capsys):
    append_events(3)
    old_file, new_file, short_file = tmp_path / "old.json", tmp_path / "new.json", tmp_path / "short.json"
    call_command("ledger", "export", "--from", "1", "-o", str(old_file))
    append_events(3)
    call_command("ledger", "export", "--from", "1", "-o", str(new_file))
    capsys.readouterr()
    call_command("ledger", "verify", "--bundle", str(new_file), "--extends", str(old_file))
    assert "OK the bundle extends the older one through seq 4" in capsys.readouterr().out
    call_command("ledger", "export", "--from", "1", "--to", "2", "-o", str(short_file))
    with pytest.raises(SystemExit):
        call_command("ledger", "verify", "--bundle", str(short_file), "--extends", str(new_file))
    assert "LEDGER_TRUNCATED" in capsys.readouterr().err


def test_ledger_verify_prints_its_notes(capsys):
    append_events(1)
    call_command("ledger", "verify", "--workers", "1")
    assert "note: no witness log" in capsys.readouterr().out
