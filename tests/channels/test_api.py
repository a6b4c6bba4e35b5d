"""POST /api/v1/events/: signed CloudEvents ingest, every refusal, the signing modes, and counters."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection
from django.test import Client
from django.utils import timezone

from controlplane.channels import selectors, services
from controlplane.channels.models import Delivery, ProducerKey
from controlplane.identity.services import grant_revoke
from controlplane.kernel import signatures
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from tests import envelope
from tests.channels.support import UNSET, URL, cloudevent, make_deliver, written
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db

MODES = ("off", "allow-unsigned", "require-signed", "require-valid-signature")
CHECKING_MODES = ("allow-unsigned", "require-signed", "require-valid-signature")


def assert_refused(response, status: int, code: str, before: tuple[int, int]) -> dict:
    body = response.json()
    assert (response.status_code, body["code"]) == (status, code), body
    assert written() == before, "a refused delivery wrote something"
    return body


def counters() -> dict[tuple[str, str], int]:
    return {(c.producer, c.code): c.count for c in selectors.rejection_counts()}


# --- accepted deliveries -----------------------------------------------------------------------------


def test_a_signed_event_is_appended_with_its_provenance_and_delivery(producer, deliver):
    event = cloudevent(comexampleregion="eu-west-1", comexamplepriority=3)
    body = orjson.dumps(event)
    before = written()

    response = deliver(producer, body, webhook_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")

    assert response.status_code == 201, response.json()
    ledger_event = LedgerEvent.objects.get(type="com.example.alert.fired")
    assert envelope.body(response) == {
        "seq": ledger_event.seq,
        "id": ledger_event.id,
        "hash": ledger_event.hash,
        "verdict": "verified",
        "key_id": producer.key_id,
        "fidelity": "live",
    }
    assert written() == (before[0] + 1, before[1] + 1)
    assert ledger_event.source == "urn:example:alerts"
    assert ledger_event.subject == "service/checkout"
    assert ledger_event.time == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert ledger_event.tenant == "acme"
    assert ledger_event.actor == "acme/producer-alerts"
    assert ledger_event.idempotency_key == f"ingest:{producer.producer.pk}:evt-1"
    assert ledger_event.fidelity == "live" and ledger_event.reason_codes == []
    assert ledger_event.data == {"severity": "critical", "score": 0.75, "labels": ["a", "b"]}
    assert ledger_event.provenance == {
        "producer": "acme/alerts",
        "key_id": producer.key_id,
        "verdict": "verified",
        "webhook_id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "ce_id": "evt-1",
        "signing_mode": "require-valid-signature",
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "data_location": "ledger.data",
        "cloudevent": {
            "specversion": "1.0",
            "id": "evt-1",
            "source": "urn:example:alerts",
            "type": "com.example.alert.fired",
            "subject": "service/checkout",
            "time": "2026-01-02T03:04:05.123456Z",
            "datacontenttype": "application/json",
            "comexampleregion": "eu-west-1",
            "comexamplepriority": 3,
        },
    }
    delivery = Delivery.objects.get()
    assert (delivery.producer_id, delivery.webhook_id, delivery.ce_id, delivery.seq) == (
        producer.producer.pk,
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "evt-1",
        ledger_event.seq,
    )
    assert verify_chain().ok


def test_application_json_is_accepted_too(producer, deliver):
    response = deliver(producer, content_type="application/json; charset=utf-8")
    assert response.status_code == 201


def test_without_time_the_receipt_time_is_used(producer, deliver):
    before = timezone.now()
    response = deliver(producer, cloudevent(time=UNSET))
    after = timezone.now()
    assert response.status_code == 201
    moment = LedgerEvent.objects.get(seq=response.json()["seq"]).time
    assert before <= moment <= after


def test_minimal_event_without_subject_or_data(producer, deliver):
    event = {"specversion": "1.0", "id": "e", "source": "s", "type": "t"}
    response = deliver(producer, event)
    assert response.status_code == 201
    ledger_event = LedgerEvent.objects.get(seq=response.json()["seq"])
    assert (ledger_event.subject, ledger_event.data) == ("", {})
    assert ledger_event.provenance["data_location"] == "absent"
    assert ledger_event.provenance["cloudevent"] == event


@pytest.mark.parametrize(
    "member, value",
    [("data", "plain text"), ("data", [1, 2.5, None]), ("data", None), ("data_base64", "AAECAw==")],
)
def test_non_object_data_is_kept_verbatim_in_provenance(producer, deliver, member, value):
    event = {**cloudevent(data=UNSET), member: value}
    response = deliver(producer, event)
    assert response.status_code == 201, response.json()
    ledger_event = LedgerEvent.objects.get(seq=response.json()["seq"])
    assert ledger_event.data == {}
    assert ledger_event.provenance["data_location"] == "provenance.cloudevent"
    assert ledger_event.provenance["cloudevent"][member] == value
    assert verify_chain().ok


def test_floats_and_unicode_in_data_verify_on_the_chain(producer, deliver):
    data = {"ratio": 0.1, "big": 1e21, "tiny": -5e-324, "name": "café ☕", "nested": {"z": 1, "a": [0.5]}}
    response = deliver(producer, cloudevent(data=data))
    assert response.status_code == 201
    assert LedgerEvent.objects.get(seq=response.json()["seq"]).data == data
    assert verify_chain().ok


def test_the_traceparent_extension_becomes_the_ledger_trace(producer, deliver):
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = deliver(producer, cloudevent(traceparent=traceparent))
    ledger_event = LedgerEvent.objects.get(seq=response.json()["seq"])
    assert (ledger_event.trace_id, ledger_event.traceparent) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        traceparent,
    )


def test_an_ed25519_producer_signs_with_v1a(tenant, deliver):
    private_key = Ed25519PrivateKey.generate()
    created = services.producer_create(
        tenant=tenant, name="edge", ed25519_public_key=signatures.ed25519_public_key_text(private_key)
    )
    assert created.hmac_secret is None
    response = deliver(created, sign=[private_key])
    assert response.status_code == 201
    assert (response.json()["verdict"], response.json()["key_id"]) == ("verified", created.key_id)


def test_the_hot_path_query_count_is_pinned(settings, producer, deliver, django_assert_num_queries):
    settings.CONTROLPLANE_INGEST_AUTH_CACHE_SECONDS = 60  # however slow the machine, the cache holds
    deliver(producer, cloudevent(id="warm-up"), webhook_id="msg_0")  # touches the token's last_used_at
    # token, principal, grants, producer and keys come from the ingest cache after the warm-up (1 s);
    # savepoint, earlier deliveries, lock, head, ledger insert, delivery insert, release. The ASGI path
    # makes none through Django: its chain writer appends on a connection of its own (test_ingest_asgi).
    with django_assert_num_queries(0 if deliver.via == "asgi" else 7):
        response = deliver(producer)
    assert response.status_code == 201


# --- signing modes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_valid_signature_is_verified_in_every_checking_mode(settings, producer, deliver, mode):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = mode
    response = deliver(producer)
    assert response.status_code == 201
    expected = ("unchecked", None, "degraded") if mode == "off" else ("verified", producer.key_id, "live")
    body = response.json()
    assert (body["verdict"], body["key_id"], body["fidelity"]) == expected


def test_off_ignores_signatures_and_marks_the_event_degraded(settings, producer, deliver):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = "off"
    response = deliver(producer, signature="v1,bm9wZQ==", timestamp=1)
    assert response.status_code == 201
    ledger_event = LedgerEvent.objects.get(seq=response.json()["seq"])
    assert (ledger_event.fidelity, ledger_event.reason_codes) == ("degraded", [])
    assert ledger_event.provenance["verdict"] == "unchecked"
    assert ledger_event.provenance["signing_mode"] == "off"


def test_allow_unsigned_accepts_an_unsigned_delivery_as_degraded(settings, producer, deliver):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = "allow-unsigned"
    response = deliver(producer, signature=None, webhook_id=None)
    assert response.status_code == 201
    body = response.json()
    assert (body["verdict"], body["key_id"], body["fidelity"]) == ("unsigned", None, "degraded")
    ledger_event = LedgerEvent.objects.get(seq=body["seq"])
    assert ledger_event.reason_codes == ["SIGNATURE_MISSING"]
    assert ledger_event.provenance["webhook_id"] is None
    assert Delivery.objects.get().webhook_id == ""


def test_allow_unsigned_still_refuses_a_signature_that_does_not_verify(settings, producer, deliver):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = "allow-unsigned"
    before = written()
    response = deliver(producer, sign=[signatures.hmac_secret_generate()])
    assert_refused(response, 401, "SIGNATURE_INVALID", before)


@pytest.mark.parametrize("mode", ["require-signed", "require-valid-signature"])
def test_required_modes_refuse_an_unsigned_delivery(settings, producer, deliver, mode):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = mode
    before = written()
    body = assert_refused(deliver(producer, signature=None), 401, "SIGNATURE_MISSING", before)
    assert mode in body["detail"]


# --- keys: rotation, revocation, expiry -------------------------------------------------------------


def test_rotation_accepts_both_keys_during_the_overlap_and_names_the_matching_key(producer, deliver):
    old_secret, old_key = producer.hmac_secret, producer.key_id
    rotated = services.producer_key_rotate(producer=producer.producer, overlap_seconds=3600)
    new_secret, new_key = rotated.hmac_secret, rotated.key.key_id

    both = deliver(producer, cloudevent(id="both"), webhook_id="m1", sign=[old_secret, new_secret])
    old_only = deliver(producer, cloudevent(id="old"), webhook_id="m2", sign=[old_secret])
    new_only = deliver(producer, cloudevent(id="new"), webhook_id="m3", sign=[new_secret])

    assert [(r.status_code, r.json()["verdict"], r.json()["key_id"]) for r in (both, old_only, new_only)] == [
        (201, "verified", new_key),
        (201, "verified", old_key),
        (201, "verified", new_key),
    ]
    seq = both.json()["seq"]
    assert LedgerEvent.objects.get(seq=seq).provenance["key_id"] == new_key


@pytest.mark.parametrize("mode", CHECKING_MODES)
def test_a_revoked_key_is_refused_in_every_checking_mode(settings, producer, deliver, mode):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = mode
    services.producer_key_revoke(key_id=producer.key_id, reason="leaked")
    before = written()
    body = assert_refused(deliver(producer), 401, "KEY_REVOKED", before)
    assert producer.key_id in body["detail"]


def test_a_revoked_key_does_not_block_a_second_valid_signature(producer, deliver):
    rotated = services.producer_key_rotate(producer=producer.producer)
    services.producer_key_revoke(key_id=producer.key_id)
    response = deliver(producer, sign=[producer.hmac_secret, rotated.hmac_secret])
    assert (response.status_code, response.json()["key_id"]) == (201, rotated.key.key_id)


def _expire_the_first_key(producer) -> str:
    rotated = services.producer_key_rotate(producer=producer.producer, overlap_seconds=0)
    assert ProducerKey.objects.get(key_id=producer.key_id).status == "expired"
    return rotated.hmac_secret


def test_require_valid_signature_refuses_an_expired_key(producer, deliver):
    _expire_the_first_key(producer)
    before = written()
    body = assert_refused(deliver(producer), 401, "KEY_EXPIRED", before)
    assert producer.key_id in body["detail"]


@pytest.mark.parametrize("mode", ["allow-unsigned", "require-signed"])
def test_other_modes_accept_an_expired_key_as_degraded(settings, producer, deliver, mode):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = mode
    _expire_the_first_key(producer)
    response = deliver(producer)
    body = response.json()
    assert (response.status_code, body["verdict"], body["key_id"], body["fidelity"]) == (
        201,
        "expired-key",
        producer.key_id,
        "degraded",
    )
    assert LedgerEvent.objects.get(seq=body["seq"]).reason_codes == ["KEY_EXPIRED"]


def test_a_key_not_yet_valid_counts_as_expired(producer, deliver):
    ProducerKey.objects.filter(key_id=producer.key_id).update(valid_from=timezone.now() + timedelta(hours=1))
    before = written()
    assert_refused(deliver(producer), 401, "KEY_EXPIRED", before)


def test_a_signature_of_a_kind_the_producer_has_no_key_for_is_key_unknown(producer, deliver):
    before = written()
    assert_refused(deliver(producer, sign=[Ed25519PrivateKey.generate()]), 401, "KEY_UNKNOWN", before)


@pytest.mark.parametrize(
    "mode, status, outcome",
    [
        ("off", 201, "unchecked"),
        ("allow-unsigned", 401, "KEY_UNKNOWN"),
        ("require-signed", 401, "KEY_UNKNOWN"),
    ],
)
def test_a_producer_without_keys(settings, producer, deliver, mode, status, outcome):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = mode
    ProducerKey.objects.all().delete()
    before = written()
    response = deliver(producer)
    if status == 201:
        assert (response.status_code, response.json()["verdict"]) == (201, outcome)
    else:
        assert_refused(response, status, outcome, before)


@pytest.mark.parametrize(
    "signature",
    ["v1,bm9wZQ==", "v2,bm9wZQ==", "v1,***", "nonsense"],
    ids=["wrong-mac", "unknown-version", "not-base64", "garbage"],
)
def test_a_signature_that_does_not_verify_is_invalid(producer, deliver, signature):
    before = written()
    assert_refused(deliver(producer, signature=signature), 401, "SIGNATURE_INVALID", before)


def test_a_signature_over_other_bytes_is_invalid(producer, deliver):
    """The signature covers the raw body: re-serialised JSON with the same meaning does not verify."""
    body = orjson.dumps(cloudevent())
    timestamp = int(time.time())
    signature = signatures.sign_hmac(producer.hmac_secret, "msg_1", timestamp, body)
    spaced = orjson.dumps(cloudevent(), option=orjson.OPT_INDENT_2)
    before = written()
    response = deliver(producer, spaced, timestamp=timestamp, signature=signature)
    assert_refused(response, 401, "SIGNATURE_INVALID", before)


# --- timestamps and signing headers ------------------------------------------------------------------


# Just past the 300 s tolerance, with a few seconds to spare for a slow machine between signing and checking.
@pytest.mark.parametrize("offset", [-305, 305, -86400, 86400], ids=["past", "future", "day-old", "day-ahead"])
def test_a_timestamp_outside_the_tolerance_is_stale(producer, deliver, offset):
    before = written()
    body = assert_refused(
        deliver(producer, timestamp=int(time.time()) + offset), 401, "STALE_TIMESTAMP", before
    )
    assert ("ahead of" if offset > 0 else "behind") in body["detail"]


def test_the_tolerance_comes_from_settings(settings, producer, deliver):
    settings.CONTROLPLANE_EVENT_TOLERANCE_SECONDS = 3600
    assert deliver(producer, timestamp=int(time.time()) - 1800).status_code == 201


@pytest.mark.parametrize(
    "headers, detail",
    [
        ({"webhook_id": None}, "webhook-id"),
        ({"webhook_id": "msg.1"}, "webhook-id"),
        ({"webhook_id": "msg 1"}, "webhook-id"),
        ({"webhook_id": "m" * 201}, "webhook-id"),
    ],
    ids=["id-missing", "id-with-dot", "id-with-space", "id-too-long"],
)
def test_malformed_webhook_id_is_refused(producer, deliver, headers, detail):
    before = written()
    body = assert_refused(deliver(producer, **headers), 400, "MALFORMED_EVENT", before)
    assert detail in body["detail"]


@pytest.mark.parametrize("timestamp", ["", "soon", "-5", "1.5", "1" * 13])
def test_malformed_webhook_timestamp_is_refused(producer, deliver, timestamp):
    before = written()
    response = deliver(producer, signature="v1,bm9wZQ==", extra_headers={"webhook-timestamp": timestamp})
    body = assert_refused(response, 400, "MALFORMED_EVENT", before)
    assert "webhook-timestamp" in body["detail"]


# --- the event itself --------------------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["id", "source", "specversion", "type"])
def test_a_missing_required_attribute_is_refused_by_name_and_never_filled_in(producer, deliver, attribute):
    before = written()
    body = assert_refused(deliver(producer, cloudevent(**{attribute: UNSET})), 400, "MALFORMED_EVENT", before)
    assert body["detail"] == f"required attribute {attribute!r} is missing"


@pytest.mark.parametrize(
    "event, detail",
    [
        (b"not json", "not JSON"),
        (b"[]", "one JSON object"),
        (b'[{"specversion": "1.0"}]', "one JSON object"),
        (cloudevent(id=""), "'id' must be a non-empty string"),
        (cloudevent(id=7), "'id' must be a non-empty string"),
        (cloudevent(id=None), "'id' is missing"),
        (cloudevent(specversion="0.3"), "specversion must be '1.0'"),
        (cloudevent(specversion=1.0), "'specversion' must be a non-empty string"),
        (cloudevent(time="yesterday"), "RFC 3339"),
        (cloudevent(time="2026-01-02T03:04:05"), "RFC 3339"),
        (cloudevent(time="2026-02-30T03:04:05Z"), "RFC 3339"),
        (cloudevent(subject=""), "'subject' must be a non-empty string"),
        (cloudevent(data_base64="AAE="), "not both"),
        (cloudevent(data=UNSET, data_base64="***"), "data_base64"),
        (cloudevent(Region="eu"), "lower-case"),
        (cloudevent(comexample_region="eu"), "lower-case"),
        (cloudevent(comexample={"nested": 1}), "string, an integer or a boolean"),
        (cloudevent(comexample=1.5), "string, an integer or a boolean"),
        (cloudevent(comexample=2**40), "32-bit"),
        (cloudevent(id="x" * 201), "'id' is longer than 200"),
        (cloudevent(type="t" * 201), "'type' is longer than 200"),
        (cloudevent(subject="s" * 256), "'subject' is longer than 255"),
        (cloudevent(data={"too_big": 2**60}), "canonicalised"),
    ],
)
def test_a_malformed_event_is_refused(producer, deliver, event, detail):
    before = written()
    body = assert_refused(deliver(producer, event), 400, "MALFORMED_EVENT", before)
    assert detail in body["detail"]


# (application/cloudevents-batch+json is the batched mode: tests/channels/test_ingest_batch.py)
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml"])
def test_other_content_types_are_refused(producer, deliver, content_type):
    before = written()
    body = assert_refused(deliver(producer, content_type=content_type), 400, "MALFORMED_EVENT", before)
    assert content_type in body["detail"]


@pytest.mark.parametrize("event_type", ["controlplane.ledger.key.rotated", "ControlPlane.approval.granted"])
def test_reserved_types_are_refused(producer, deliver, event_type):
    before = written()
    body = assert_refused(deliver(producer, cloudevent(type=event_type)), 400, "EVENT_TYPE_RESERVED", before)
    assert event_type in body["detail"]


# --- duplicates --------------------------------------------------------------------------------------


def test_a_second_delivery_with_the_same_webhook_id_is_a_duplicate(producer, deliver):
    first = deliver(producer, cloudevent(id="evt-1"), webhook_id="msg_same")
    before = written()
    again = deliver(producer, cloudevent(id="evt-2"), webhook_id="msg_same")
    body = assert_refused(again, 409, "DUPLICATE_EVENT", before)
    assert (body["seq"], body["duplicate_of"]) == (first.json()["seq"], "webhook-id")


def test_a_second_delivery_with_the_same_cloudevents_id_is_a_duplicate(producer, deliver):
    first = deliver(producer, cloudevent(id="evt-1"), webhook_id="msg_1")
    before = written()
    again = deliver(producer, cloudevent(id="evt-1", data={"changed": True}), webhook_id="msg_2")
    body = assert_refused(again, 409, "DUPLICATE_EVENT", before)
    assert (body["seq"], body["duplicate_of"]) == (first.json()["seq"], "CloudEvents id")
    assert LedgerEvent.objects.get(seq=first.json()["seq"]).data == cloudevent()["data"]


def test_unsigned_duplicates_are_found_by_cloudevents_id(settings, producer, deliver):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = "allow-unsigned"
    first = deliver(producer, signature=None, webhook_id=None)
    before = written()
    body = assert_refused(deliver(producer, signature=None, webhook_id=None), 409, "DUPLICATE_EVENT", before)
    assert body["seq"] == first.json()["seq"]


def test_the_same_ids_from_another_producer_are_not_duplicates(tenant, producer, deliver):
    other = services.producer_create(tenant=tenant, name="other")
    assert deliver(producer).status_code == 201
    assert deliver(other).status_code == 201


def _race(n: int, created, events_and_ids) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def send(i: int) -> None:
        event, webhook_id = events_and_ids(i)
        barrier.wait()
        try:
            results[i] = make_deliver(Client())(created, event, webhook_id=webhook_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("shared", ["webhook-id", "CloudEvents id"])
def test_concurrent_duplicate_deliveries_yield_exactly_one_event(transactional_db, shared):
    created = services.producer_create(tenant=TenantFactory(slug="race"), name="racer")
    if shared == "webhook-id":
        results = _race(8, created, lambda i: (cloudevent(id=f"evt-{i}"), "msg_shared"))
    else:
        results = _race(8, created, lambda i: (cloudevent(id="evt-shared"), f"msg_{i}"))

    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [409] * 7
    accepted = next(r.json() for r in results if r.status_code == 201)
    refused = [r.json() for r in results if r.status_code == 409]
    assert {(b["code"], b["seq"], b["duplicate_of"]) for b in refused} == {
        ("DUPLICATE_EVENT", accepted["seq"], shared)
    }
    assert Delivery.objects.count() == 1
    assert LedgerEvent.objects.filter(source="urn:example:alerts").count() == 1
    assert verify_chain().ok


# --- who may deliver ---------------------------------------------------------------------------------


def test_without_a_token_the_delivery_is_refused(producer, deliver):
    before = written()
    assert_refused(deliver(producer, token=None), 401, "AUTH_REQUIRED", before)


def test_a_principal_that_is_not_a_producer_is_refused(tenant, producer, deliver):
    impostor = PrincipalFactory(tenant=tenant, name="impostor", capabilities=["events.ingest"])
    token = token_for(impostor)
    before = written()
    body = assert_refused(deliver(producer, token=token), 403, "PRODUCER_UNKNOWN", before)
    assert "acme/impostor" in body["detail"]


def test_a_producer_without_the_ingest_grant_is_refused(producer, deliver):
    grant_revoke(principal=producer.producer.principal, capability="events.ingest")
    before = written()
    assert_refused(deliver(producer), 403, "CAPABILITY_MISSING", before)


# --- load shedding -----------------------------------------------------------------------------------


def test_over_the_inflight_limit_the_delivery_is_shed_with_retry_after(settings, producer, deliver):
    settings.CONTROLPLANE_INGEST_MAX_INFLIGHT = 0
    before = written()
    response = deliver(producer)
    assert_refused(response, 503, "INGEST_OVERLOADED", before)
    assert response["Retry-After"] == "1"
    assert response.json()["request_id"] == response["X-Request-ID"]


def test_the_inflight_slot_is_released_after_each_delivery_and_refusal(settings, producer, deliver):
    settings.CONTROLPLANE_INGEST_MAX_INFLIGHT = 1
    assert deliver(producer, cloudevent(id="a"), webhook_id="m_a").status_code == 201
    assert deliver(producer, signature="v1,bm9wZQ==").status_code == 401
    assert deliver(producer, cloudevent(id="b"), webhook_id="m_b").status_code == 201


# --- rejection counters ------------------------------------------------------------------------------


def test_every_refusal_is_counted_per_producer_and_code(settings, tenant, producer, deliver, client):
    impostor = PrincipalFactory(tenant=tenant, name="impostor", capabilities=["events.ingest"])
    deliver(producer, signature="v1,bm9wZQ==")
    deliver(producer, signature="v1,bm9wZQ==")
    deliver(producer, cloudevent(type="controlplane.x"))
    deliver(producer, token=None)
    deliver(producer, token=token_for(impostor))
    client.get(URL, headers={"Authorization": f"Bearer {producer.token_secret}"})
    settings.CONTROLPLANE_INGEST_MAX_INFLIGHT = 0
    deliver(producer)
    assert counters() == {
        ("acme/alerts", "SIGNATURE_INVALID"): 2,
        ("acme/alerts", "EVENT_TYPE_RESERVED"): 1,
        ("unknown", "AUTH_REQUIRED"): 1,
        ("unknown", "PRODUCER_UNKNOWN"): 1,
        ("unknown", "METHOD_NOT_ALLOWED"): 1,
        ("unknown", "INGEST_OVERLOADED"): 1,
    }


def test_the_counters_are_served_to_ledger_readers_of_the_tenant(tenant, producer, deliver, client):
    deliver(producer, signature="v1,bm9wZQ==")
    deliver(producer, token=None)
    other_tenant = services.producer_create(tenant="globex", name="alerts")
    deliver(other_tenant, timestamp=1)
    reader = PrincipalFactory(tenant=tenant, name="auditor", capabilities=["ledger.read"])

    response = client.get(f"{URL}rejections/", headers={"Authorization": f"Bearer {token_for(reader)}"})

    assert response.status_code == 200
    assert envelope.body(response) == {
        "total": 2,
        "counters": [
            {"producer": "acme/alerts", "code": "SIGNATURE_INVALID", "count": 1},
            {"producer": "unknown", "code": "AUTH_REQUIRED", "count": 1},
        ],
    }
    assert counters()[("globex/alerts", "STALE_TIMESTAMP")] == 1


def test_the_counters_need_ledger_read(producer, client):
    response = client.get(f"{URL}rejections/", headers={"Authorization": f"Bearer {producer.token_secret}"})
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")
