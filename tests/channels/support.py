"""Helpers for the ingest tests: CloudEvents, a deliverer for each of the three serving paths, and what a
refusal must leave unchanged."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from django.test import Client
from django.test.client import ClientHandler

from controlplane.channels import services
from controlplane.channels.models import Delivery
from controlplane.kernel import signatures
from controlplane.ledger.models import LedgerEvent
from controlplane.serving import LeanChainMixin

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
