"""Batched signed CloudEvents ingest (`application/cloudevents-batch+json` on `POST /api/v1/events/`): the
batch is signed and verified as one delivery, each event checked and accepted or refused on its own, with
its code; a duplicate inside a batch (or of an event on the chain) is refused alone."""

from __future__ import annotations

import orjson
import pytest

from controlplane.channels.models import Delivery
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from incidents.models import Signal
from tests.channels.support import cloudevent, make_deliver, written
from tests.incidents.factories import generic

pytestmark = pytest.mark.django_db

BATCH = "application/cloudevents-batch+json"


@pytest.fixture
def deliver(client):
    return make_deliver(client)


def batch(*events) -> bytes:
    return orjson.dumps(list(events))


def test_a_batch_is_verified_once_and_each_event_is_appended_with_its_outcome(producer, deliver):
    before = written()
    body = batch(cloudevent(id="b-1"), cloudevent(id="b-2"), cloudevent(id="b-3"))
    response = deliver(producer, body, webhook_id="msg_batch_1", content_type=BATCH)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["accepted"], answer["refused"]) == (3, 0)
    events = LedgerEvent.objects.filter(type="com.example.alert.fired").order_by("seq")
    assert [e.id for e in events] == [item["id"] for item in answer["events"]]
    assert [(item["index"], item["outcome"], item["verdict"]) for item in answer["events"]] == [
        (0, "accepted", "verified"),
        (1, "accepted", "verified"),
        (2, "accepted", "verified"),
    ]
    assert [e.provenance["batch_index"] for e in events] == [0, 1, 2]
    assert sorted(Delivery.objects.values_list("webhook_id", flat=True)) == [
        "msg_batch_1#0",
        "msg_batch_1#1",
        "msg_batch_1#2",
    ]
    assert written() == (before[0] + 3, before[1] + 3)
    assert verify_chain().ok


def test_a_bad_event_and_a_duplicate_inside_a_batch_are_refused_alone(producer, deliver):
    body = batch(cloudevent(id="c-1"), cloudevent(id="c-2", specversion="0.3"), cloudevent(id="c-1"))
    answer = deliver(producer, body, webhook_id="msg_batch_2", content_type=BATCH).json()
    assert [(item["outcome"], item.get("code")) for item in answer["events"]] == [
        ("accepted", None),
        ("refused", "MALFORMED_EVENT"),
        ("refused", "DUPLICATE_EVENT"),
    ]
    assert answer["events"][2]["seq"] == answer["events"][0]["seq"]  # names the original
    assert LedgerEvent.objects.filter(type="com.example.alert.fired").count() == 1


def test_a_retried_batch_refuses_each_event_as_a_duplicate_and_writes_nothing(producer, deliver):
    body = batch(cloudevent(id="d-1"), cloudevent(id="d-2"))
    first = deliver(producer, body, webhook_id="msg_batch_3", content_type=BATCH).json()
    before = written()
    again = deliver(producer, body, webhook_id="msg_batch_3", content_type=BATCH).json()
    assert (again["accepted"], again["refused"]) == (0, 2)
    assert [item["code"] for item in again["events"]] == ["DUPLICATE_EVENT", "DUPLICATE_EVENT"]
    assert [item["seq"] for item in again["events"]] == [item["seq"] for item in first["events"]]
    assert written() == before


@pytest.mark.parametrize(
    ("body", "signature", "code", "status"),
    [
        (batch(cloudevent(id="e-1")), "v1,AAAA", "SIGNATURE_INVALID", 401),
        (orjson.dumps(cloudevent(id="e-2")), None, "MALFORMED_EVENT", 400),  # an object, not an array
        (b"[]", None, "MALFORMED_EVENT", 400),
        (b"[not json", None, "MALFORMED_EVENT", 400),
    ],
)
def test_a_batch_refused_as_a_whole_writes_nothing(producer, deliver, body, signature, code, status):
    from tests.channels.support import UNSET

    before = written()
    response = deliver(
        producer, body, webhook_id="msg_batch_4", content_type=BATCH, signature=signature or UNSET
    )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert written() == before


def test_signal_events_in_a_batch_run_detection_as_single_events_do(producer, deliver):
    from controlplane.identity import services as identity

    identity.grant_add(principal=producer.producer.principal, capability="signals.ingest", actor="test")
    signal = {
        "type": "io.controlplane.signal",
        "datacontenttype": "application/json",
        "data": generic(fingerprint="sig-1"),
    }
    body = batch(cloudevent(id="f-1", **signal), cloudevent(id="f-2"))
    answer = deliver(producer, body, webhook_id="msg_batch_5", content_type=BATCH).json()
    assert answer["accepted"] == 2, answer
    assert Signal.objects.filter(fingerprint="sig-1").count() == 1
    assert verify_chain().ok
