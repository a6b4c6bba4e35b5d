"""The ASGI application's ingest path (controlplane.asgi, controlplane.channels.ingest.event_loop) and the
chain writers it appends with (controlplane.ledger.writer).

Every delivery case of test_api.py also runs through this path (the `deliver` fixture's "asgi"
variant); these tests cover what is particular to it: the middleware phases it runs, the routing,
refusing early on a late loop or a stuck appender, the expected-head append and its fallbacks. Its
chain writer appends on a connection of its own, as in production, so these tests commit.
"""

from __future__ import annotations

import asyncio
import threading
import time

import orjson
import pytest
from django.db import connection, transaction

from controlplane.asgi import IngestRouter, application, django_application
from controlplane.channels import selectors, services
from controlplane.channels.ingest import event_loop
from controlplane.channels.models import Delivery
from controlplane.identity import services as identity
from controlplane.kernel import signatures
from controlplane.ledger import chain, keys
from controlplane.ledger import services as ledger
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from incidents.models import Incident, Signal
from tests import envelope
from tests.channels.asgi import AsgiClient, asgi_request
from tests.channels.support import URL, accepted_answer, cloudevent, make_deliver, written
from tests.channels.test_ingest_path import wsgi_post
from tests.identity.factories import TenantFactory
from tests.incidents.factories import at, generic, make_rule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def producer():
    return services.producer_create(tenant=TenantFactory(slug="acme"), name="alerts", actor="test")


@pytest.fixture
def post(asgi_loop):
    return make_deliver(AsgiClient(asgi_loop))


def signed_headers(created, body: bytes, webhook_id: str, **extra: str) -> list[tuple[str, str]]:
    timestamp = int(time.time())
    return [
        ("host", "testserver"),
        ("content-type", "application/cloudevents+json"),
        ("content-length", str(len(body))),
        ("authorization", f"Bearer {created.token_secret}"),
        ("webhook-id", webhook_id),
        ("webhook-timestamp", str(timestamp)),
        ("webhook-signature", signatures.sign_hmac(created.hmac_secret, webhook_id, timestamp, body)),
        *extra.items(),
    ]


def delivery(producer, body: bytes, webhook_id: str, chunk: int | None = None):
    """One signed delivery through the ASGI application (a coroutine, for the session's loop)."""
    headers = signed_headers(producer, body, webhook_id)
    return asgi_request(application, method="POST", path=URL, headers=headers, body=body, chunk=chunk)


def counted(code: str, producer: str = "unknown") -> int:
    services.rejection_flush()
    return {(c.producer, c.code): c.count for c in selectors.rejection_counts()}.get((producer, code), 0)


# --- the same answers as the WSGI path ------------------------------------------------------------------


def test_the_asgi_application_answers_ingest_as_the_wsgi_application_does(producer, post):
    response = post(
        producer, cloudevent(id="a"), webhook_id="m_a", extra_headers={"X-Request-ID": "req-asgi"}
    )
    status, wsgi_headers, _ = wsgi_post(producer, cloudevent(id="b"), webhook_id="m_b")

    assert (response.status_code, status) == (201, 201)
    event = LedgerEvent.objects.get(seq=response.json()["seq"])
    assert envelope.body(response) == accepted_answer(event, producer)
    assert event.request_id == "req-asgi" and response["X-Request-ID"] == "req-asgi"
    # The lean middleware's response phases: the same headers as the WSGI lean chain sends.
    assert set(response.headers) == {name.lower() for name in wsgi_headers}
    for name in ("X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Content-Type"):
        assert response[name] == wsgi_headers[name]
    assert response["Content-Length"] == str(len(response.content))
    assert Delivery.objects.filter(seq=event.seq).exists()
    assert verify_chain().ok


def test_a_refusal_has_the_same_body_and_headers_as_on_the_wsgi_path(producer, post):
    response = post(producer, signature="v1,bm9wZQ==", extra_headers={"X-Request-ID": "req-1"})
    status, headers, body = wsgi_post(
        producer, headers={"HTTP_WEBHOOK_SIGNATURE": "v1,bm9wZQ==", "HTTP_X_REQUEST_ID": "req-1"}
    )

    assert (response.status_code, response.json()) == (status, body)
    assert body["code"] == "SIGNATURE_INVALID"
    assert set(response.headers) == {name.lower() for name in headers}


def test_the_asgi_path_keeps_allowed_hosts(producer, asgi_loop):
    before = written()
    response = AsgiClient(asgi_loop).post(URL, b"{}", "application/cloudevents+json", host="evil.example")
    assert response.status_code == 400
    assert written() == before


def test_the_phases_run_are_the_lean_middleware():
    assert event_loop.phases_match_settings()


def test_with_other_middleware_ingest_goes_to_django_and_still_answers(settings, producer, asgi_loop):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    router = IngestRouter(django_application)
    assert router.fast is False
    response = make_deliver(AsgiClient(asgi_loop, router))(producer)
    assert response.status_code == 201
    assert LedgerEvent.objects.filter(seq=response.json()["seq"]).exists()


def test_other_requests_go_to_django(asgi_loop):
    answer = asgi_loop.run(
        asgi_request(application, method="GET", path="/healthz", headers=[("host", "testserver")])
    )
    assert answer.status_code == 200


def test_the_lifespan_protocol_is_answered(asgi_loop):
    sent = []
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message["type"])

    asgi_loop.run(application({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_a_body_sent_in_pieces_is_read_whole(producer, asgi_loop):
    body = orjson.dumps(cloudevent(id="chunked"))
    answer = asgi_loop.run(delivery(producer, body, "m_c", chunk=7))
    assert answer.status_code == 201, answer.content


def test_a_client_that_goes_away_before_its_body_gets_no_answer_and_writes_nothing(producer, asgi_loop):
    sent, before = [], written()
    scope = {
        "type": "http",
        "method": "POST",
        "path": URL,
        "headers": [(b"host", b"testserver"), (b"content-length", b"100")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "query_string": b"",
    }

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asgi_loop.run(application(scope, receive, send))
    assert sent == [] and written() == before


def test_a_body_over_the_upload_limit_is_refused_unread(settings, producer, asgi_loop):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = orjson.dumps(cloudevent(id="big", data={"pad": "x" * 500}))
    before = written()
    answer = asgi_loop.run(delivery(producer, body, "m_big", chunk=64))
    assert (answer.status_code, answer.json()["code"]) == (400, "MALFORMED_EVENT")
    assert "upload limit" in answer.json()["detail"]
    assert written() == before


# --- refusing early -------------------------------------------------------------------------------------


def test_a_loop_running_late_refuses_what_arrives_until_it_catches_up(settings, producer, asgi_loop):
    settings.CONTROLPLANE_INGEST_QUEUE_BUDGET_MS = 50
    bodies = [orjson.dumps(cloudevent(id=f"late-{i}")) for i in range(5)]
    headers = [signed_headers(producer, body, f"m_late_{i}") for i, body in enumerate(bodies)]
    warm = asgi_loop.run(
        asgi_request(application, method="POST", path=URL, headers=headers[0], body=bodies[0])
    )
    assert warm.status_code == 201  # the loop's lag watcher runs from the first delivery on
    before = written()

    async def late_then_deliver():
        time.sleep(0.2)  # the loop is busy elsewhere: 200 ms of work with no await
        await asyncio.sleep(0.001)  # the watcher notices first (its timer is due earlier)
        return await asyncio.gather(
            *(
                asgi_request(application, method="POST", path=URL, headers=h, body=b)
                for h, b in zip(headers[1:], bodies[1:], strict=True)
            )
        )

    answers = asgi_loop.run(late_then_deliver())
    assert [(a.status_code, a.json()["code"], a["Retry-After"]) for a in answers] == [
        (503, "INGEST_OVERLOADED", "1")
    ] * 4
    assert written() == before
    assert counted("INGEST_OVERLOADED") == 4
    deadline = time.monotonic() + 5  # caught up (within a few of the watcher's samples): served again
    while True:
        time.sleep(0.02)
        again = asgi_loop.run(
            asgi_request(application, method="POST", path=URL, headers=headers[1], body=bodies[1])
        )
        if again.status_code != 503 or time.monotonic() > deadline:
            break
    assert again.status_code == 201


def test_a_stuck_appender_refuses_new_deliveries_past_the_budget(settings, producer, asgi_loop):
    """While the chain's lock is held elsewhere, the first delivery waits for it; once it has waited past
    the budget, new deliveries are refused at once instead of queueing behind it."""
    settings.CONTROLPLANE_INGEST_QUEUE_BUDGET_MS = 50
    deliver = make_deliver(AsgiClient(asgi_loop))
    assert deliver(producer, cloudevent(id="warm"), webhook_id="m_warm").status_code == 201
    first: dict = {}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(chain.CHAIN_LOCK_SQL, [chain.CHAIN_LOCK_KEY])
        waiting = threading.Thread(
            target=lambda: first.update(r=deliver(producer, cloudevent(id="a"), webhook_id="m_a"))
        )
        waiting.start()
        time.sleep(0.3)
        refused = deliver(producer, cloudevent(id="b"), webhook_id="m_b")
    waiting.join(timeout=10)

    assert (refused.status_code, refused.json()["code"]) == (503, "INGEST_OVERLOADED")
    assert first["r"].status_code == 201
    assert not Delivery.objects.filter(webhook_id="m_b").exists()


# --- group commit and the chain writer ------------------------------------------------------------------


def test_concurrent_deliveries_make_one_gap_free_chain(settings, producer, asgi_loop):
    settings.CONTROLPLANE_INGEST_MAX_INFLIGHT = 64
    bodies = [orjson.dumps(cloudevent(id=f"c-{i}")) for i in range(40)]

    async def together():
        return await asyncio.gather(*(delivery(producer, b, f"m_{i}") for i, b in enumerate(bodies)))

    answers = asgi_loop.run(together())
    assert sorted(a.status_code for a in answers) == [201] * 40
    seqs = sorted(a.json()["seq"] for a in answers)
    assert seqs == list(range(seqs[0], seqs[0] + 40))
    assert Delivery.objects.filter(seq__in=seqs).count() == 40
    assert verify_chain().ok


def test_the_writer_appends_after_the_head_it_left_and_falls_back_when_another_writer_moved_it(
    producer, post
):
    writer = event_loop.group_commit.writer
    first = post(producer, cloudevent(id="a"), webhook_id="m_a").json()
    assert writer.expected is not None and writer.expected.seq == first["seq"]  # next: one round trip

    moved = ledger.ledger_append(type="test.elsewhere", subject="x", data={})  # another writer appends
    second = post(producer, cloudevent(id="b"), webhook_id="m_b")

    assert second.status_code == 201
    assert second.json()["seq"] == moved.seq + 1  # the expected head had moved: appended the careful way
    assert LedgerEvent.objects.get(seq=second.json()["seq"]).prev_hash == moved.hash
    assert writer.expected.seq == second.json()["seq"]
    assert verify_chain().ok


def test_a_duplicate_sent_by_the_expected_head_append_is_found_and_named(producer, post):
    first = post(producer, cloudevent(id="a"), webhook_id="m_a").json()
    assert event_loop.group_commit.writer.expected is not None
    before = written()
    again = post(producer, cloudevent(id="a"), webhook_id="m_other")

    assert (again.status_code, again.json()["code"], again.json()["seq"]) == (
        409,
        "DUPLICATE_EVENT",
        first["seq"],
    )
    assert written() == before
    assert verify_chain().ok


def test_a_key_rotated_between_batches_signs_the_next_one(producer, post):
    assert post(producer, cloudevent(id="a"), webhook_id="m_a").status_code == 201
    rotated = keys.key_rotate(actor="test", reason="scheduled")
    answer = post(producer, cloudevent(id="b"), webhook_id="m_b")

    assert answer.status_code == 201
    assert LedgerEvent.objects.get(seq=answer.json()["seq"]).key_id == rotated.key_id
    assert verify_chain().ok


def test_signal_cloudevents_run_detection_and_open_an_incident(producer, post):
    """Signals append through the ORM on a thread (detection runs in their transaction)."""
    identity.grant_add(principal=producer.producer.principal, capability="signals.ingest", actor="test")
    make_rule(producer.producer.tenant)
    for index in range(3):
        body = generic(starts=at(index * 60), fingerprint=f"ce-{index}")
        body.pop("source")
        event = cloudevent(
            id=f"evt-{index}", type="io.controlplane.signal", source="urn:edge:eu-1", data=body
        )
        answer = post(producer, event, webhook_id=f"msg_{index}")
        assert answer.status_code == 201, answer.content
    assert Signal.objects.count() == 3
    assert Incident.objects.count() == 1
    assert verify_chain().ok


def test_batches_in_flight_after_the_head_moved_all_fall_back_and_land(settings, producer, post, asgi_loop):
    """With the expected head stale, the first batch fails its head check, and so does the one sent behind
    it (sealed against the first's outcome): both are appended the careful way, nothing lost or repeated."""
    settings.CONTROLPLANE_INGEST_MAX_INFLIGHT = 64
    assert post(producer, cloudevent(id="first"), webhook_id="m_first").status_code == 201
    moved = ledger.ledger_append(type="test.elsewhere", subject="x", data={})
    bodies = [orjson.dumps(cloudevent(id=f"f-{i}")) for i in range(12)]

    async def together():
        requests = [delivery(producer, b, f"m_f{i}") for i, b in enumerate(bodies)]
        return await asyncio.gather(*requests)

    answers = asgi_loop.run(together())
    assert [a.status_code for a in answers] == [201] * 12
    assert sorted(a.json()["seq"] for a in answers) == list(range(moved.seq + 1, moved.seq + 13))
    assert verify_chain().ok
