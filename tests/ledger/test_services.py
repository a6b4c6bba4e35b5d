"""The append service: chaining, signing, idempotency, transactions, append-only."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from controlplane.identity.models import Tenant
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger import crypto
from controlplane.ledger.models import GENESIS_HASH, LedgerEvent, SigningKey
from controlplane.ledger.services import ledger_append
from controlplane.ledger.verify import verify_chain

pytestmark = pytest.mark.django_db


def _append(n: int = 1, **kwargs):
    return [
        ledger_append(type="controlplane.test.happened", subject=f"test/{i}", data={"i": i}, **kwargs)
        for i in range(n)
    ]


def test_first_append_generates_a_key_and_chains_from_genesis():
    event = _append()[0]
    activation = LedgerEvent.objects.get(seq=1)
    assert activation.type == "controlplane.ledger.key.activated"
    assert activation.prev_hash == GENESIS_HASH
    assert event.seq == 2 and event.prev_hash == activation.hash
    key = SigningKey.objects.get()
    assert key.status == "active" and key.valid_from_seq == 1
    assert event.key_id == key.key_id


def test_hash_is_sha256_of_prev_hash_and_stored_canonical_bytes_and_signature_verifies():
    event = _append()[0]
    expected = hashlib.sha256(event.prev_hash.encode() + event.canonical.encode()).hexdigest()
    assert event.hash == expected
    key = SigningKey.objects.get(key_id=event.key_id)
    assert crypto.verify_signature(key.public_key, event.signature, bytes.fromhex(event.hash))


def test_idempotency_key_returns_the_original_and_writes_nothing():
    first = ledger_append(
        type="controlplane.test.happened", subject="x", data={"a": 1}, idempotency_key="k-1"
    )
    count = LedgerEvent.objects.count()
    again = ledger_append(
        type="controlplane.test.happened", subject="x", data={"a": 2}, idempotency_key="k-1"
    )
    assert again.seq == first.seq and again.data == {"a": 1}
    assert LedgerEvent.objects.count() == count


def test_state_change_and_event_roll_back_together():
    _append()
    before = LedgerEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        Tenant.objects.create(slug="doomed", name="Doomed")
        _append()
        raise RuntimeError("the caller fails after appending")
    assert LedgerEvent.objects.count() == before
    assert not Tenant.objects.filter(slug="doomed").exists()


def test_a_failing_append_fails_the_whole_change_and_writes_nothing():
    _append()
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as caught, transaction.atomic():
        Tenant.objects.create(slug="half", name="Half")
        ledger_append(type="controlplane.test.happened", subject="x", data={"too_big": 2**60})
    assert caught.value.code == "LEDGER_NOT_CANONICAL"
    assert LedgerEvent.objects.count() == before
    assert not Tenant.objects.filter(slug="half").exists()


def test_missing_private_key_fails_closed_and_writes_nothing(settings, tmp_path):
    _append()
    before = LedgerEvent.objects.count()
    settings.CONTROLPLANE_KEY_DIR = tmp_path / "elsewhere"
    crypto.forget_loaded_keys()
    with pytest.raises(ControlPlaneError) as caught, transaction.atomic():
        _append()
    assert caught.value.code == "LEDGER_KEY_UNAVAILABLE"
    assert LedgerEvent.objects.count() == before


def test_prod_posture_without_a_key_fails_closed(settings):
    settings.CONTROLPLANE_LEDGER_AUTOGENERATE_KEY = False
    with pytest.raises(ControlPlaneError) as caught, transaction.atomic():
        _append()
    assert caught.value.code == "LEDGER_KEY_UNAVAILABLE"
    assert LedgerEvent.objects.count() == 0


def test_model_and_queryset_refuse_update_and_delete():
    event = _append()[0]
    event.data = {"changed": True}
    for attempt in (
        event.save,
        event.delete,
        LedgerEvent.objects.all().delete,
        lambda: LedgerEvent.objects.update(type="x"),
    ):
        with pytest.raises(ControlPlaneError) as caught:
            attempt()
        assert caught.value.code == "LEDGER_APPEND_ONLY"
    assert LedgerEvent.objects.get(seq=event.seq).data == {"i": 0}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_ledgerevent SET type = 'x'",
        "DELETE FROM ledger_ledgerevent",
        "TRUNCATE ledger_ledgerevent CASCADE",
    ],
)
def test_postgres_trigger_refuses_raw_sql(statement):
    _append()
    with (
        pytest.raises(Exception, match="LEDGER_APPEND_ONLY"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert LedgerEvent.objects.count() == 2


def test_request_context_and_trace_are_recorded():
    from controlplane.kernel.context import request_context

    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with request_context(request_id="req-123", traceparent=traceparent):
        event = _append()[0]
    assert event.request_id == "req-123"
    assert event.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert event.traceparent == traceparent


@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_before_the_trigger_test():
    """Ordering guard: the TRUNCATE trigger must be back on for the test after a transactional one."""
    assert _append()[0].seq == 2


def test_truncate_trigger_is_back_on_after_a_transactional_test():
    _append()
    with (
        pytest.raises(Exception, match="LEDGER_APPEND_ONLY"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("TRUNCATE ledger_ledgerevent CASCADE")


# --- prepared events: canonical bytes spliced under the lock, several appends under one lock ----------


@pytest.mark.parametrize(
    "data",
    [
        {"i": 1},
        {"ratio": 0.1, "big": 1e21, "tiny": -5e-324, "neg": -0.0},
        {"name": "café ☕", "\U0001f600": "emoji key sorts by UTF-16", "\ue000": "private use"},
        {"nested": {"z": [1, {"b": None, "a": True}], "a": '\u2028\x1f\\"'}},
        {},
    ],
)
def test_the_stored_bytes_are_the_canonical_form_of_the_signed_envelope(data):
    from controlplane.kernel.canonical import canonical_bytes

    event = ledger_append(
        type="controlplane.test.happened",
        subject="s/é",
        data=data,
        reason_codes=["A", "B"],
        provenance={"x": [0.5, "y"]},
        idempotency_key="k-canon",
    )
    stored = event.canonical.encode()
    signed = orjson.loads(stored)
    assert stored == canonical_bytes(signed)
    assert signed["data"] == data and signed["seq"] == event.seq and signed["key_id"] == event.key_id
    assert signed["prev_hash"] == event.prev_hash and signed["specversion"] == "1.0"
    assert verify_chain().ok


def test_prepared_events_append_in_order_under_one_insert_with_idempotency():
    from controlplane.ledger.services import ledger_append_prepared, ledger_prepare

    first = ledger_append(type="controlplane.test.happened", subject="x", data={"n": 0}, idempotency_key="k0")
    head = first.seq
    prepared = [
        ledger_prepare(type="controlplane.test.happened", subject="x", data={"n": 1}, idempotency_key="k1"),
        ledger_prepare(type="controlplane.test.happened", subject="x", data={"n": 2}, idempotency_key="k0"),
        ledger_prepare(type="controlplane.test.happened", subject="x", data={"n": 3}),
        ledger_prepare(type="controlplane.test.happened", subject="x", data={"n": 4}, idempotency_key="k1"),
    ]
    with CaptureQueriesContext(connection) as queries:
        events = ledger_append_prepared(prepared)

    assert [e.seq for e in events] == [head + 1, first.seq, head + 2, head + 1]
    assert [e.data for e in events] == [{"n": 1}, {"n": 0}, {"n": 3}, {"n": 1}]
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT INTO ledger_ledgerevent")]
    assert len(inserts) == 1
    written = LedgerEvent.objects.filter(seq__gt=head).values_list("seq", flat=True)
    assert list(written) == [head + 1, head + 2]
    assert LedgerEvent.objects.get(seq=head + 2).prev_hash == LedgerEvent.objects.get(seq=head + 1).hash
    assert verify_chain().ok


def test_a_prepared_event_that_cannot_be_canonicalised_is_refused_before_the_lock():
    from controlplane.ledger.services import ledger_prepare

    with pytest.raises(ControlPlaneError) as caught:
        ledger_prepare(type="controlplane.test.happened", subject="x", data={"n": 2**60})
    assert caught.value.code == "LEDGER_NOT_CANONICAL"
    assert LedgerEvent.objects.count() == 0
