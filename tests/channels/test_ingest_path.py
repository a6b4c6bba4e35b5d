"""The ingest hot path: the WSGI fast path and queue-time shedding, the auth cache and its bound, and
group commit (controlplane.serving, controlplane.channels.ingest.lean)."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta

import orjson
import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, connections
from django.test import Client
from django.utils import timezone

from controlplane import serving
from controlplane.channels import selectors, services
from controlplane.channels.ingest import checks
from controlplane.channels.ingest import lean as lean_path
from controlplane.channels.models import Delivery, KeyKind, ProducerKey
from controlplane.identity.models import ApiToken
from controlplane.identity.services import principal_set_active, token_revoke
from controlplane.kernel import signatures
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from controlplane.wsgi import application
from tests.channels.support import URL, accepted_answer, cloudevent, make_deliver, written
from tests.identity.factories import TenantFactory

pytestmark = pytest.mark.django_db


def wsgi_post(created, event=None, *, webhook_id="msg_w", host="testserver", method="POST", headers=None):
    """Call the project's WSGI application directly, as gunicorn does; returns (status, headers, body)."""
    body = orjson.dumps(event or cloudevent())
    timestamp = int(time.time())
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": URL,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "CONTENT_TYPE": "application/cloudevents+json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {created.token_secret}",
        "HTTP_WEBHOOK_ID": webhook_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(timestamp),
        "HTTP_WEBHOOK_SIGNATURE": signatures.sign_hmac(created.hmac_secret, webhook_id, timestamp, body),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        **(headers or {}),
    }
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

    # As Django's test client does: keep the test's transaction (and its connection) open.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = application(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    is_json = answer["headers"].get("Content-Type") == "application/json"
    return answer["status"], answer["headers"], orjson.loads(content) if is_json else content


# --- the WSGI fast path ---------------------------------------------------------------------------------


def test_the_wsgi_application_serves_ingest_on_the_lean_chain_with_the_same_answer(producer):
    status, headers, body = wsgi_post(producer, headers={"HTTP_X_REQUEST_ID": "req-lean-1"})

    assert status == 201, body
    event = LedgerEvent.objects.get(seq=body["seq"])
    assert {k: v for k, v in body.items() if k != "meta"} == accepted_answer(event, producer)
    assert body["meta"]["fidelity"] == "live"  # the telemetry envelope, on the lean path too
    assert event.request_id == "req-lean-1" and headers["X-Request-ID"] == "req-lean-1"
    # The security middleware still runs on the lean chain.
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert verify_chain().ok


def test_the_lean_chain_keeps_allowed_hosts(producer):
    before = written()
    status, _, _ = wsgi_post(producer, host="evil.example")
    assert status == 400
    assert written() == before


def test_other_methods_on_the_ingest_path_go_to_django(producer):
    status, _, body = wsgi_post(producer, method="GET")
    assert (status, body["code"]) == (405, "METHOD_NOT_ALLOWED")


def test_a_request_that_waited_past_the_queue_budget_is_refused_before_any_work(settings, producer):
    settings.CONTROLPLANE_INGEST_QUEUE_BUDGET_MS = 50
    before = written()
    serving.set_waited(0.2)
    try:
        status, headers, body = wsgi_post(producer, headers={"HTTP_X_REQUEST_ID": "req-late"})
    finally:
        serving.set_waited(None)

    assert (status, body["code"], body["request_id"]) == (503, "INGEST_OVERLOADED", "req-late")
    assert headers["Retry-After"] == "1" and headers["X-Request-ID"] == "req-late"
    assert written() == before
    counts = {(c.producer, c.code): c.count for c in selectors.rejection_counts()}
    assert counts[("unknown", "INGEST_OVERLOADED")] == 1


def test_a_request_within_the_budget_or_with_the_budget_off_is_served(settings, producer):
    settings.CONTROLPLANE_INGEST_QUEUE_BUDGET_MS = 50
    serving.set_waited(0.001)
    try:
        assert wsgi_post(producer, webhook_id="msg_a", event=cloudevent(id="a"))[0] == 201
        settings.CONTROLPLANE_INGEST_QUEUE_BUDGET_MS = 0
        serving.set_waited(10)
        assert wsgi_post(producer, webhook_id="msg_b", event=cloudevent(id="b"))[0] == 201
    finally:
        serving.set_waited(None)


def test_the_lean_chain_is_the_project_middleware_without_the_page_machinery(settings):
    lean = lean_path.lean_middleware()
    assert lean == [m for m in settings.MIDDLEWARE if m not in lean_path.LEAN_SKIP]
    assert "controlplane.middleware.RequestIdMiddleware" in lean
    assert "django.middleware.security.SecurityMiddleware" in lean
    assert "django.contrib.sessions.middleware.SessionMiddleware" not in lean


# --- the authentication cache and its bound -------------------------------------------------------------


@pytest.fixture
def long_cache(settings):
    settings.CONTROLPLANE_INGEST_AUTH_CACHE_SECONDS = 60
    checks.auth_cache.clear()


def test_a_token_revoked_in_this_process_is_refused_at_once(long_cache, producer, deliver):
    assert deliver(producer, cloudevent(id="a"), webhook_id="m_a").status_code == 201
    token_revoke(prefix=producer.producer.principal.tokens.get().prefix)
    response = deliver(producer, cloudevent(id="b"), webhook_id="m_b")
    assert (response.status_code, response.json()["code"]) == (401, "AUTH_INVALID_TOKEN")


def test_a_key_revoked_in_this_process_is_refused_at_once(long_cache, producer, deliver):
    assert deliver(producer, cloudevent(id="a"), webhook_id="m_a").status_code == 201
    services.producer_key_revoke(key_id=producer.key_id, reason="leaked")
    response = deliver(producer, cloudevent(id="b"), webhook_id="m_b")
    assert (response.status_code, response.json()["code"]) == (401, "KEY_REVOKED")


def test_a_deactivated_principal_is_refused_at_once(long_cache, producer, deliver):
    assert deliver(producer, cloudevent(id="a"), webhook_id="m_a").status_code == 201
    principal_set_active(principal=producer.producer.principal, is_active=False)
    response = deliver(producer, cloudevent(id="b"), webhook_id="m_b")
    assert (response.status_code, response.json()["code"]) == (401, "AUTH_INVALID_TOKEN")


def test_a_revocation_made_elsewhere_takes_effect_within_the_cache_lifetime(settings, long_cache, producer):
    client = Client()
    deliver = make_deliver(client)
    assert deliver(producer, cloudevent(id="a"), webhook_id="m_a").status_code == 201
    # As another process would: the row changes, no signal reaches this process's cache.
    ApiToken.objects.filter(principal=producer.producer.principal).update(revoked_at=timezone.now())

    assert deliver(producer, cloudevent(id="b"), webhook_id="m_b").status_code == 201  # inside the bound
    settings.CONTROLPLANE_INGEST_AUTH_CACHE_SECONDS = 0  # the lifetime has passed
    response = deliver(producer, cloudevent(id="c"), webhook_id="m_c")
    assert (response.status_code, response.json()["code"]) == (401, "AUTH_INVALID_TOKEN")


def test_a_key_added_elsewhere_verifies_at_once(long_cache, producer, deliver):
    assert deliver(producer, cloudevent(id="a"), webhook_id="m_a").status_code == 201
    secret = signatures.hmac_secret_generate()
    ProducerKey.objects.bulk_create(  # no signal: the cache still holds the old key list
        [
            ProducerKey(
                producer=producer.producer,
                key_id="pk_added_elsewhere",
                kind=KeyKind.HMAC,
                secret=secret,
                valid_from=timezone.now() - timedelta(seconds=1),
            )
        ]
    )
    response = deliver(producer, cloudevent(id="b"), webhook_id="m_b", sign=[secret])
    assert response.status_code == 201, response.json()
    assert response.json()["key_id"] == "pk_added_elsewhere"


# --- group commit ---------------------------------------------------------------------------------------


def _queued_while_the_leader_is_held(created, deliveries):
    """Deliver each (event, webhook_id) from its own thread while this thread holds the leader's place,
    so that all of them are queued; then let go: one of them appends the whole queue."""
    results = [None] * len(deliveries)

    def send(i):
        event, webhook_id = deliveries[i]
        try:
            results[i] = make_deliver(Client())(created, event, webhook_id=webhook_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(deliveries))]
    with lean_path.group_commit._leader:
        deadline = time.monotonic() + 30
        for queued, thread in enumerate(threads, start=1):  # one at a time: the queue keeps this order
            thread.start()
            while len(lean_path.group_commit._queue) < queued:  # bounded by the deadline
                assert time.monotonic() < deadline, "the deliveries were not queued"
                time.sleep(0.005)
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_queued_deliveries_are_appended_in_one_transaction():
    created = services.producer_create(tenant=TenantFactory(slug="batch"), name="batcher")
    results = _queued_while_the_leader_is_held(
        created, [(cloudevent(id=f"evt-{i}"), f"msg_{i}") for i in range(5)]
    )

    assert [r.status_code for r in results] == [201] * 5
    seqs = sorted(r.json()["seq"] for r in results)
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(DISTINCT xmin::text) FROM ledger_ledgerevent WHERE seq = ANY(%s)", [seqs]
        )
        assert cursor.fetchone()[0] == 1  # one transaction: one chain lock, one commit
    assert sorted(Delivery.objects.values_list("seq", flat=True)) == seqs
    assert verify_chain().ok
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_repeats_inside_one_batch_are_refused_as_if_delivered_one_by_one():
    created = services.producer_create(tenant=TenantFactory(slug="dupes"), name="dupes")
    results = _queued_while_the_leader_is_held(
        created,
        [
            (cloudevent(id="e1"), "w1"),
            (cloudevent(id="e2"), "w1"),  # the webhook-id again
            (cloudevent(id="e1"), "w3"),  # the CloudEvents id again
            (cloudevent(id="e4"), "w4"),
        ],
    )

    first, second, third, fourth = (r.json() for r in results)
    assert [r.status_code for r in results] == [201, 409, 409, 201]
    assert (second["code"], second["duplicate_of"], second["seq"]) == (
        "DUPLICATE_EVENT",
        "webhook-id",
        first["seq"],
    )
    assert (third["code"], third["duplicate_of"], third["seq"]) == (
        "DUPLICATE_EVENT",
        "CloudEvents id",
        first["seq"],
    )
    assert fourth["seq"] == first["seq"] + 1
    assert Delivery.objects.count() == 2
    assert verify_chain().ok
    connections.close_all()
