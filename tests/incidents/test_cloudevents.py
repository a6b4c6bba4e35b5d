"""CloudEvents of type io.controlplane.signal, sent through the signed event ingest, become signals; a
signal that cannot be normalised refuses the whole delivery and nothing is written."""

from __future__ import annotations

import pytest

from controlplane.channels import services as channels
from controlplane.channels.models import Delivery
from controlplane.identity import services as identity
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from incidents.models import Incident, Signal
from tests.channels.support import cloudevent, make_deliver
from tests.incidents.factories import at, generic, make_rule, written

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _strict(settings):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = "require-valid-signature"


@pytest.fixture
def producer(tenant):
    created = channels.producer_create(tenant=tenant, name="edge-monitor", actor="test")
    identity.grant_add(principal=created.producer.principal, capability="signals.ingest", actor="test")
    return created


def signal_event(index: int, **data):
    body = generic(starts=at(index * 60), fingerprint=f"ce-{index}", **data)
    body.pop("source")  # the CloudEvent's source names it
    return cloudevent(id=f"evt-{index}", type="io.controlplane.signal", source="urn:edge:eu-1", data=body)


def test_signal_cloudevents_become_signals_and_open_an_incident(client, tenant, producer):
    make_rule(tenant)
    deliver = make_deliver(client)
    for index in range(3):
        response = deliver(producer, signal_event(index), webhook_id=f"msg_{index}")
        assert response.status_code == 201, response.content
    signals = Signal.objects.order_by("seq")
    assert [(s.source, s.source_kind, s.service, s.observed_at) for s in signals] == [
        ("urn:edge:eu-1", "cloudevents", "checkout", at(i * 60)) for i in range(3)
    ]
    first_ce = LedgerEvent.objects.get(type="io.controlplane.signal", provenance__ce_id="evt-0")
    assert LedgerEvent.objects.get(subject=f"signal/{signals[0].pk}").causation_id == first_ce.id
    assert Incident.objects.count() == 1


def test_an_unnormalisable_signal_cloudevent_is_refused_and_writes_nothing(client, tenant, producer):
    deliver = make_deliver(client)
    before = (*written(), Delivery.objects.count())
    event = signal_event(0)
    event["data"]["starts_at"] = "not a time"
    response = deliver(producer, event)
    assert (response.status_code, response.json()["code"], response.json()["field"]) == (
        400,
        "SIGNAL_INVALID",
        "data.starts_at",
    )
    assert (*written(), Delivery.objects.count()) == before


def test_a_producer_without_signals_ingest_cannot_send_signals(client, tenant):
    plain = channels.producer_create(tenant=tenant, name="plain", actor="test")
    deliver = make_deliver(client)
    before = (*written(), Delivery.objects.count())
    response = deliver(plain, signal_event(0))
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")
    assert (*written(), Delivery.objects.count()) == before
    other = deliver(plain, cloudevent(id="evt-other"))  # other event types are unaffected
    assert other.status_code == 201 and Signal.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_signal_cloudevent_takes_the_detection_lock_before_the_chain_lock(tenant, producer):
    """The order signal ingest uses everywhere: were the event's own append made first, a delivery to a
    service whose ingest is mid-way would hold the chain while waiting for that ingest, which waits for
    the chain: a deadlock."""
    import threading
    import time

    from django.db import connection, transaction
    from django.test import Client

    from controlplane.ledger.services import ledger_append
    from incidents import services

    make_rule(tenant)
    answers: list = []

    def send() -> None:
        try:
            answers.append(make_deliver(Client())(producer, signal_event(0)))
        finally:
            connection.close()

    def waiting_for_detection_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND NOT granted"
            )
            return cursor.fetchone()[0] > 0

    with transaction.atomic():
        services.detection_locks_take(scopes=[(tenant.pk, "checkout")])  # an Alertmanager ingest, mid-way
        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 10
        while not waiting_for_detection_lock() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert waiting_for_detection_lock()
        ledger_append(type="controlplane.test.happened", subject="test/mid-way", data={})  # the chain is free
    sender.join(timeout=10)
    assert answers and answers[0].status_code == 201, answers
    assert Signal.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_person_acting_on_an_incident_while_a_cloudevent_adds_evidence_does_not_deadlock(
    tenant, producer, oncall
):
    """Both take the incident's row lock before the chain's lock: the CloudEvent's own append is deferred
    with the signal's (before, the delivery took the chain with its event, then waited for the row the
    person held, who waited for the chain: a deadlock)."""
    import threading

    from django.db import connection, transaction
    from django.test import Client

    from incidents import services
    from tests.incidents.factories import open_incident
    from tests.incidents.test_concurrency import _until, _waiting

    make_rule(tenant, threshold=3, window_seconds=600)
    incident = open_incident(tenant)
    answers: list = []

    def send() -> None:
        try:
            answers.append(make_deliver(Client())(producer, signal_event(3), webhook_id="msg_late"))
        finally:
            connection.close()

    with transaction.atomic():
        Incident.objects.select_for_update().get(pk=incident.pk)  # incident_acknowledge's first step ...
        sender = threading.Thread(target=send)
        sender.start()
        assert _until(lambda: _waiting("locktype IN ('transactionid', 'tuple')"))  # waits for the row
        services.incident_acknowledge(incident=incident, actor=oncall)  # ... appends: the chain is free
    sender.join(timeout=10)
    assert answers and answers[0].status_code == 201, answers and answers[0].content
    incident.refresh_from_db()
    assert incident.status == "acknowledged"
    assert incident.evidence.count() == 2
    assert verify_chain().ok
