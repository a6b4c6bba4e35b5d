"""Verification finds every kind of tampering and names the first broken seq with its reason code."""

from __future__ import annotations

import itertools
import json

import pytest
from django.core.management import call_command

from controlplane.ledger import checkpoints, keys, services, verify
from controlplane.ledger.bundle import bundle_export, bundle_verify
from controlplane.ledger.models import STORED_COLUMNS, LedgerEvent, VerificationRun
from controlplane.ledger.verify import verify_chain
from tests.ledger.helpers import append_events, tamper

pytestmark = pytest.mark.django_db


def test_intact_chain_verifies_with_count_and_head():
    events = append_events(5)
    result = verify_chain()
    assert result.ok
    assert result.count == 6  # the key activation plus five
    assert (result.head_seq, result.head_hash) == (events[-1].seq, events[-1].hash)


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("UPDATE ledger_ledgerevent SET data = '{\"i\": 99}' WHERE seq = %s", "LEDGER_HASH_MISMATCH"),
        (
            "UPDATE ledger_ledgerevent SET type = 'controlplane.test.forged' WHERE seq = %s",
            "LEDGER_HASH_MISMATCH",
        ),
        ("UPDATE ledger_ledgerevent SET subject = 'test/other' WHERE seq = %s", "LEDGER_HASH_MISMATCH"),
        ("UPDATE ledger_ledgerevent SET actor = 'acme/mallory' WHERE seq = %s", "LEDGER_HASH_MISMATCH"),
        (
            "UPDATE ledger_ledgerevent SET time = time + interval '1 second' WHERE seq = %s",
            "LEDGER_HASH_MISMATCH",
        ),
        (
            'UPDATE ledger_ledgerevent SET provenance = \'{"producer": "x"}\' WHERE seq = %s',
            "LEDGER_HASH_MISMATCH",
        ),
        ("UPDATE ledger_ledgerevent SET reason_codes = '[\"X\"]' WHERE seq = %s", "LEDGER_HASH_MISMATCH"),
        (
            "UPDATE ledger_ledgerevent SET canonical = replace(canonical, 'test/2', 'test/9') WHERE seq = %s",
            "LEDGER_HASH_MISMATCH",
        ),
        ("UPDATE ledger_ledgerevent SET prev_hash = repeat('a', 64) WHERE seq = %s", "LEDGER_CHAIN_BROKEN"),
        (
            "UPDATE ledger_ledgerevent SET signature = "
            "(SELECT signature FROM ledger_ledgerevent WHERE seq = 2) "
            "WHERE seq = %s",
            "LEDGER_SIGNATURE_INVALID",
        ),
        ("DELETE FROM ledger_ledgerevent WHERE seq = %s", "LEDGER_SEQ_GAP"),
    ],
)
def test_tampered_row_is_found_at_its_seq(sql, code):
    append_events(6)
    tamper(sql, [4])
    result = verify_chain()
    assert not result.ok
    assert (result.failure.seq, result.failure.code) == (5 if code == "LEDGER_SEQ_GAP" else 4, code)
    assert result.count == 3


# One change to each stored column of seq 4, and what verification reports there. A row moved to another
# seq is reported at seq 5, the row found in its place; a changed envelope column is named.
COLUMN_TAMPERING = [
    ("seq", "seq = 1000", "LEDGER_SEQ_GAP"),
    ("id", "id = 'forged'", "column"),
    ("type", "type = 'controlplane.test.forged'", "column"),
    ("source", "source = 'forged'", "column"),
    ("subject", "subject = 'test/other'", "column"),
    ("time", "time = time + interval '1 microsecond'", "column"),
    ("tenant", "tenant = 'other'", "column"),
    ("actor", "actor = 'acme/mallory'", "column"),
    ("trace_id", "trace_id = repeat('f', 32)", "column"),
    ("traceparent", "traceparent = '00-' || repeat('f', 32) || '-' || repeat('f', 16) || '-01'", "column"),
    ("causation_id", "causation_id = 'forged'", "column"),
    ("correlation_id", "correlation_id = 'forged'", "column"),
    ("idempotency_key", "idempotency_key = 'forged'", "column"),
    ("request_id", "request_id = 'forged'", "column"),
    ("fidelity", "fidelity = 'simulated'", "column"),
    ("reason_codes", "reason_codes = '[\"X\"]'", "column"),
    ("data", 'data = \'{"i": "2"}\'', "column"),  # the same digits as a string
    ("provenance", 'provenance = \'{"producer": "x"}\'', "column"),
    ("prev_hash", "prev_hash = repeat('a', 64)", "LEDGER_CHAIN_BROKEN"),
    ("key_id", "key_id = 'ed25519:0000000000000000'", "column"),
    ("hash", "hash = repeat('e', 64)", "LEDGER_HASH_MISMATCH"),
    (
        "signature",
        "signature = (SELECT signature FROM ledger_ledgerevent WHERE seq = 2)",
        "LEDGER_SIGNATURE_INVALID",
    ),
    ("canonical", "canonical = replace(canonical, 'test/2', 'test/9')", "LEDGER_HASH_MISMATCH"),
]


def test_every_stored_column_has_a_tampering_case():
    assert [column for column, _, _ in COLUMN_TAMPERING] == list(STORED_COLUMNS)


@pytest.mark.parametrize(("column", "assignment", "outcome"), COLUMN_TAMPERING)
def test_a_change_to_any_stored_column_is_found_at_its_seq(column, assignment, outcome):
    append_events(6)
    tamper(f"UPDATE ledger_ledgerevent SET {assignment} WHERE seq = %s", [4])  # noqa: S608 (the cases above)
    result = verify_chain()
    assert not result.ok
    if outcome == "column":
        assert (result.failure.seq, result.failure.code) == (4, "LEDGER_HASH_MISMATCH")
        assert result.failure.detail == f"stored column {column!r} differs from what was signed"
    else:
        assert (result.failure.seq, result.failure.code) == (5 if outcome == "LEDGER_SEQ_GAP" else 4, outcome)
    assert result.count == 3


def test_signed_body_with_a_renamed_field_is_refused_though_the_column_is_null():
    """`idempotency_key` is null here: the body must hold the field itself, not merely no other value."""
    append_events(5)
    assert LedgerEvent.objects.get(seq=3).idempotency_key is None
    renamed = "replace(canonical, '\"idempotency_key\":null', '\"idempotency_kez\":null')"
    tamper(
        f"UPDATE ledger_ledgerevent SET canonical = {renamed}, "  # noqa: S608 (a constant)
        f"hash = encode(sha256(convert_to(prev_hash || {renamed}, 'UTF8')), 'hex') WHERE seq = %s",
        [3],
    )
    result = verify_chain()
    assert (result.failure.seq, result.failure.code) == (3, "LEDGER_HASH_MISMATCH")
    assert result.failure.detail == "signed envelope has unexpected fields"


def test_rewritten_and_resigned_event_still_breaks_the_chain_at_that_seq():
    """A forger who recomputes an event's canonical bytes and hash cannot sign them."""
    append_events(5)
    tamper(
        "UPDATE ledger_ledgerevent SET canonical = replace(canonical, '\"i\":1', '\"i\":7'), "
        "data = '{\"i\": 7}', hash = encode(sha256(convert_to(prev_hash || "
        "replace(canonical, '\"i\":1', '\"i\":7'), 'UTF8')), 'hex') WHERE seq = %s",
        [3],
    )
    result = verify_chain()
    assert (result.failure.seq, result.failure.code) == (3, "LEDGER_SIGNATURE_INVALID")


def test_revoked_key_events_are_reported():
    append_events(3)
    old_key = LedgerEvent.objects.get(seq=2).key_id
    keys.key_revoke(key_id=old_key, reason="leaked in a log")
    result = verify_chain()
    assert (result.failure.seq, result.failure.code) == (1, "LEDGER_KEY_REVOKED")


def test_rotation_keeps_old_events_valid_and_new_events_use_the_new_key():
    append_events(2)
    old_key = LedgerEvent.objects.get(seq=1).key_id
    new_key = keys.key_rotate(reason="scheduled")
    after = append_events(2)
    assert after[-1].key_id == new_key.key_id != old_key
    assert verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_parallel_verification_agrees_and_finds_the_same_break():
    append_events(5200)
    assert verify_chain(workers=2).ok and verify_chain(workers=2).count == 5201
    tamper("UPDATE ledger_ledgerevent SET data = '{\"i\": -1}' WHERE seq = %s", [4000])
    result = verify_chain(workers=2)
    assert result.workers == 2
    assert (result.failure.seq, result.failure.code) == (4000, "LEDGER_HASH_MISMATCH")


@pytest.mark.django_db(transaction=True)
def test_chunk_boundary_break_is_found_by_parallel_verification():
    append_events(5200)
    boundary = (5201 - 1 + 2) // 2 + 1  # first seq of the second chunk
    tamper("UPDATE ledger_ledgerevent SET prev_hash = repeat('b', 64) WHERE seq = %s", [boundary])
    result = verify_chain(workers=2)
    assert (result.failure.seq, result.failure.code) == (boundary, "LEDGER_CHAIN_BROKEN")


def test_parallel_chunks_are_more_than_the_workers_and_cover_the_range_once():
    bounds = verify.chunk_bounds(3, 100_002, 2)
    assert len(bounds) == 8
    assert bounds[0] == (3, 12_502, True) and bounds[-1][1] == 100_002
    assert all(hi + 1 == next_lo for (_, hi, _), (next_lo, _, _) in itertools.pairwise(bounds))
    assert not any(is_first for _, _, is_first in bounds[1:])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("sql", "seq", "code"),
    [
        (
            "UPDATE ledger_ledgerevent SET prev_hash = repeat('b', 64) WHERE seq = %s",
            1504,
            "LEDGER_CHAIN_BROKEN",
        ),
        ("DELETE FROM ledger_ledgerevent WHERE seq = %s", 1003, "LEDGER_SEQ_GAP"),
        ("UPDATE ledger_ledgerevent SET data = '{\"i\": -1}' WHERE seq = %s", 1200, "LEDGER_HASH_MISMATCH"),
    ],
)
def test_break_in_a_later_chunk_is_found_by_parallel_verification(monkeypatch, sql, seq, code):
    monkeypatch.setattr(verify, "_MIN_CHUNK", 500)
    append_events(2000)
    assert [lo for lo, _, _ in verify.chunk_bounds(1, 2001, 2)] == [1, 502, 1003, 1504]
    tamper(sql, [seq])
    result = verify_chain(workers=2)
    assert result.workers == 2
    found_at = seq + 1 if code == "LEDGER_SEQ_GAP" else seq  # a gap is reported at the row found instead
    assert (result.failure.seq, result.failure.code, result.count) == (found_at, code, seq - 1)


def test_checkpoints_are_verified_against_the_chain():
    append_events(3)
    checkpoint = checkpoints.checkpoint_create()
    assert verify_chain().checkpoints_checked == 1
    with pytest.raises(Exception, match="LEDGER_APPEND_ONLY"):
        from django.db import connection, transaction

        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE ledger_checkpoint SET head_hash = repeat('c', 64)")
    assert checkpoint.seq == 4


def test_checkpoint_is_idempotent_per_seq():
    append_events(2)
    first = checkpoints.checkpoint_create(at_seq=2)
    again = checkpoints.checkpoint_create(at_seq=2)
    assert first.pk == again.pk


# --- bundles ------------------------------------------------------------------------------------------


def test_bundle_round_trip_verifies_offline():
    append_events(4)
    bundle = json.loads(json.dumps(bundle_export(first=2, last=5)))
    result = bundle_verify(bundle=bundle)
    assert result.ok and result.count == 4 and result.checkpoints_checked == 1


@pytest.mark.parametrize(
    ("mutate", "seq", "code"),
    [
        (lambda b: b["events"][1]["data"].update(i=42), 3, "LEDGER_HASH_MISMATCH"),
        (lambda b: b["events"][1].update(type="controlplane.test.other"), 3, "LEDGER_HASH_MISMATCH"),
        (lambda b: b["events"][2].update(prev_hash="0" * 64), 4, "LEDGER_CHAIN_BROKEN"),
        (lambda b: b["events"].pop(1), 4, "LEDGER_SEQ_GAP"),  # reported at the row found instead
        (
            lambda b: b["events"][0].update(signature=b["events"][1]["signature"]),
            2,
            "LEDGER_SIGNATURE_INVALID",
        ),
        (lambda b: b["checkpoint"].update(head_hash="f" * 64), 5, "LEDGER_CHECKPOINT_MISMATCH"),
        (lambda b: b["events"].pop(), 5, "LEDGER_SEQ_GAP"),
    ],
)
def test_tampered_bundle_is_found(mutate, seq, code):
    append_events(4)
    bundle = json.loads(json.dumps(bundle_export(first=2, last=5)))
    mutate(bundle)
    result = bundle_verify(bundle=bundle)
    assert not result.ok
    assert (result.failure.seq, result.failure.code) == (seq, code)


# --- the CLI ------------------------------------------------------------------------------------------


def test_cli_verify_ok_prints_count_and_head(capsys):
    events = append_events(2)
    call_command("ledger", "verify", "--workers", "1")
    out = capsys.readouterr().out
    assert "OK 3 events verified" in out and events[-1].hash in out
    assert VerificationRun.objects.get().ok


def test_cli_verify_failure_exits_1_naming_seq_and_code(capsys):
    append_events(3)
    tamper("UPDATE ledger_ledgerevent SET data = '{\"i\": 5}' WHERE seq = %s", [3])
    with pytest.raises(SystemExit) as exited:
        call_command("ledger", "verify", "--workers", "1")
    assert exited.value.code == 1
    assert "FAILED at seq 3: LEDGER_HASH_MISMATCH" in capsys.readouterr().err
    run = VerificationRun.objects.get()
    assert (run.ok, run.failed_seq, run.reason_code) == (False, 3, "LEDGER_HASH_MISMATCH")


def test_cli_export_and_verify_bundle(tmp_path, capsys):
    append_events(3)
    path = tmp_path / "bundle.json"
    call_command("ledger", "export", "--from", "1", "--to", "4", "--output", str(path))
    call_command("ledger", "verify", "--bundle", str(path))
    assert "OK 4 events verified, 1 checkpoints" in capsys.readouterr().out
    bundle = json.loads(path.read_text())
    bundle["events"][2]["actor"] = "acme/mallory"
    path.write_text(json.dumps(bundle))
    with pytest.raises(SystemExit) as exited:
        call_command("ledger", "verify", "--bundle", str(path))
    assert exited.value.code == 1
    assert "FAILED at seq 3: LEDGER_HASH_MISMATCH" in capsys.readouterr().err


def test_cli_verify_malformed_bundle_is_a_clear_error(tmp_path):
    from django.core.management.base import CommandError

    path = tmp_path / "junk.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(CommandError, match="LEDGER_BUNDLE_MALFORMED"):
        call_command("ledger", "verify", "--bundle", str(path))


def test_cli_checkpoint(capsys):
    append_events(1)
    call_command("ledger", "checkpoint")
    assert "checkpoint seq 2" in capsys.readouterr().out


def test_export_of_an_invalid_range_is_refused_and_writes_nothing(tmp_path):
    from django.core.management.base import CommandError

    append_events(1)
    before = LedgerEvent.objects.count()
    with pytest.raises(CommandError, match="LEDGER_RANGE_INVALID"):
        call_command("ledger", "export", "--from", "5", "--to", "3", "--output", str(tmp_path / "x.json"))
    assert LedgerEvent.objects.count() == before
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    ("signed", "stored"),
    [
        ({"flag": 1}, '{"flag": true}'),
        ({"flag": 0}, '{"flag": false}'),
        ({"flags": [True, 1]}, '{"flags": [true, true]}'),
        ({"nested": {"n": False}}, '{"nested": {"n": 0}}'),
    ],
)
def test_a_boolean_stored_for_a_number_or_the_reverse_is_found(signed, stored):
    """Python's `==` takes `true` for `1`; what the API serves must still be what was signed."""
    event = services.ledger_append(type="controlplane.test.flag", subject="test/flag", data=signed)
    tamper("UPDATE ledger_ledgerevent SET data = %s WHERE seq = %s", [stored, event.seq])
    result = verify_chain()
    assert (result.failure.seq, result.failure.code) == (event.seq, "LEDGER_HASH_MISMATCH")
    assert "'data'" in result.failure.detail


def test_floats_that_are_whole_numbers_still_verify():
    """RFC 8785 signs 2.0 as `2`; PostgreSQL stores and serves `2.0`: the same JSON number."""
    services.ledger_append(
        type="controlplane.test.numbers", subject="test/n", data={"a": 2.0, "b": [1.0, 0.5], "c": -0.0}
    )
    assert verify_chain().ok
