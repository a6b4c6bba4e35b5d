"""Fixtures for the ingest tests: a tenant, producers, and a client that signs deliveries."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client
from django.test.client import ClientHandler

from controlplane.channels import services
from controlplane.channels.models import Delivery
from controlplane.kernel import signatures
from controlplane.ledger.models import LedgerEvent
from controlplane.serving import LeanChainMixin
from tests.channels.asgi import AsgiClient, LoopThread
from tests.channels.stand_in import stand_in  # noqa: F401  (fixture: Slack's, Twilio's, Meta's API stand-in)
from tests.factories import TenantFactory

URL = "/api/v1/events/"
UNSET: Any = object()


def cloudevent(**overrides: Any) -> dict[str, Any]:
    """A valid CloudEvent; pass `name=UNSET` to leave an attribute out."""
    event = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "urn:example:alerts",
        "type": "com.example.alert.fired",
        "subject": "service/checkout",
        "time": "2026-01-02T03:04:05.123456Z",
        "datacontenttype": "application/json",
        "data": {"severity": "critical", "score": 0.75, "labels": ["a", "b"]},
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not UNSET}


def accepted_answer(event: LedgerEvent, created: services.CreatedProducer) -> dict[str, Any]:
    """The 201 body of a delivery verified with the producer's first key and appended as `event`."""
    return {
        "seq": event.seq,
        "id": event.id,
        "hash": event.hash,
        "verdict": "verified",
        "key_id": created.key_id,
        "fidelity": "live",
    }


def written() -> tuple[int, int]:
    """What an accepted delivery writes: ledger events and delivery rows."""
    return LedgerEvent.objects.count(), Delivery.objects.count()


@pytest.fixture(autouse=True)
def _strict_mode(settings):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = "require-valid-signature"
    settings.CONTROLPLANE_EVENT_TOLERANCE_SECONDS = 300
    settings.CONTROLPLANE_INGEST_MAX_INFLIGHT = 32
    # Off unless a test is about it: on a loaded machine the ASGI path's loop can run late for reasons
    # of the machine's, and would then (rightly) refuse; the shedding tests set it themselves.
    settings.CONTROLPLANE_INGEST_QUEUE_BUDGET_MS = 0


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme")


@pytest.fixture
def producer(tenant) -> services.CreatedProducer:
    return services.producer_create(tenant=tenant, name="alerts", actor="test")


Deliver = Callable[..., Any]


def make_deliver(client: Client) -> Deliver:
    def deliver(
        created: services.CreatedProducer | None,
        event: dict[str, Any] | bytes | None = None,
        *,
        webhook_id: str | None = "msg_1",
        timestamp: int | None = None,
        sign: list[Any] | None = None,
        signature: str | None = UNSET,
        content_type: str = "application/cloudevents+json",
        token: str | None = UNSET,
        extra_headers: dict[str, str] | None = None,
    ) -> Any:
        """POST one delivery. By default it is signed with the producer's HMAC secret; `sign` lists other
        secrets (`whsec_...`) or Ed25519 private keys; `signature` sets the header verbatim (None: absent)."""
        body = (
            event if isinstance(event, bytes) else orjson.dumps(event if event is not None else cloudevent())
        )
        timestamp = int(time.time()) if timestamp is None else timestamp
        if signature is UNSET:
            keys = sign if sign is not None else [created.hmac_secret]
            signature = " ".join(
                signatures.sign_hmac(k, webhook_id or "", timestamp, body)
                if isinstance(k, str)
                else signatures.sign_ed25519(k, webhook_id or "", timestamp, body)
                for k in keys
            )
        headers = {"webhook-timestamp": str(timestamp)}
        if webhook_id is not None:
            headers["webhook-id"] = webhook_id
        if signature is not None:
            headers["webhook-signature"] = signature
        if token is UNSET:
            token = created.token_secret
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        headers.update(extra_headers or {})
        return client.post(URL, data=body, content_type=content_type, headers=headers)

    return deliver


class LeanClientHandler(LeanChainMixin, ClientHandler):
    """The test client's handler with the chain production uses for ingest POSTs (controlplane.serving)."""


class LeanClient(Client):
    """A test client whose requests all go through the lean ingest chain (POST /api/v1/events/ only)."""

    def __init__(self, **defaults: Any) -> None:
        super().__init__(**defaults)
        self.handler = LeanClientHandler(enforce_csrf_checks=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that deliver through the ASGI path commit (see `deliver`)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("deliver") == "asgi":
            item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture(scope="session")
def asgi_loop(django_db_setup, django_db_blocker):
    """The event loop the ASGI tests share, as a uvicorn worker has one; its chain writer's connection is
    closed (on the loop) before the test database goes."""
    loop = LoopThread()
    yield loop
    from controlplane.channels.ingest import event_loop

    with django_db_blocker.unblock():
        loop.run(event_loop.group_commit.writer.close())
        loop.run(sync_to_async(connections.close_all, thread_sensitive=True)())  # the ORM's thread
    loop.stop()


@pytest.fixture(params=["django", "lean", "asgi"])
def deliver(request, client) -> Deliver:
    """Every delivery test runs three times: through Django's full stack (URL conf, all middleware), the
    lean WSGI chain (controlplane.serving) and the ASGI application's own ingest path
    (controlplane.channels.ingest.event_loop). All must answer alike. The ASGI path appends on a connection
    of its own, as in production, so its tests commit (transactional_db)."""
    if request.param == "asgi":
        deliver = make_deliver(AsgiClient(request.getfixturevalue("asgi_loop")))
    else:
        deliver = make_deliver(client if request.param == "django" else LeanClient())
    deliver.via = request.param
    return deliver
