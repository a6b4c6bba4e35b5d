"""The one webhook view (controlplane.channels.webhooks) serving any adapter registered with
controlplane.kernel.webhooks: a test adapter's deliveries are verified, deduplicated by delivery id,
refused with catalogue codes (and counted), and nothing is written when they are refused.

This module is also the test's URL conf: the project's URLs plus the test adapter's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from django.urls import path, resolve, reverse

from controlplane import urls as project_urls
from controlplane.channels import selectors
from controlplane.channels.webhooks import WebhookView, webhook_view
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.webhooks import (
    WebhookAdapter,
    register_webhook_adapter,
    unregister_webhook_adapter,
    webhook_adapter,
)
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from incidents.webhooks import ALERTMANAGER, GRAFANA
from tests.identity.factories import PrincipalFactory, token_for

SECRET = b"echo-secret"
TOLERANCE = 300


class EchoWebhook(WebhookAdapter):
    """A provider that signs `timestamp.body` with HMAC-SHA256 and names each delivery."""

    name = "echo-test"
    path = "test/echo/"
    capability = "signals.ingest"

    def verify(self, request: Any) -> None:
        signature = request.headers.get("X-Echo-Signature", "")
        timestamp = request.headers.get("X-Echo-Timestamp", "")
        if not signature:
            raise ControlPlaneError("SIGNATURE_MISSING")
        if not timestamp.isdigit() or abs(int(timestamp) - int(time.time())) > TOLERANCE:
            raise ControlPlaneError("STALE_TIMESTAMP")
        expected = hmac.new(SECRET, timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise ControlPlaneError("SIGNATURE_INVALID")

    def delivery_id(self, request: Any) -> str | None:
        return request.headers.get("X-Echo-Delivery") or None

    def accept(self, request: Any, principal: Any) -> dict[str, Any]:
        payload = json.loads(request.body)
        if payload.get("refuse"):
            raise ControlPlaneError("VALIDATION_FAILED", "the payload asks to be refused")
        event = ledger_append(
            type="controlplane.test.echoed",
            subject="echo/1",
            data={"said": payload.get("say", "")},
            tenant=principal.tenant.slug,
            actor=principal.ref,
            idempotency_key=payload.get("twin"),  # a twin's receipt key: a concurrent duplicate, simulated
        )
        return {"echoed": payload.get("say", ""), "seq": event.seq}


ECHO = EchoWebhook()
URL = f"/api/v1/{ECHO.path}"

urlpatterns = [path(f"api/v1/{ECHO.path}", webhook_view(ECHO), name="echo-test"), *project_urls.urlpatterns]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


@pytest.fixture(autouse=True)
def _echo_registered():
    register_webhook_adapter(ECHO)
    yield
    unregister_webhook_adapter(ECHO.name)


@pytest.fixture
def sender():
    return PrincipalFactory(name="echo-sender", capabilities=["signals.ingest"])


def deliver(client, token: str | None, payload: dict, *, delivery: str | None = "d-1", **overrides: str):
    body = json.dumps(payload).encode()
    timestamp = overrides.pop("timestamp", str(int(time.time())))
    signature = overrides.pop(
        "signature", hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )
    headers = {"X-Echo-Signature": signature, "X-Echo-Timestamp": timestamp}
    if delivery is not None:
        headers["X-Echo-Delivery"] = delivery
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(URL, body, content_type="application/json", headers=headers)


def ledger_types() -> list[str]:
    return list(LedgerEvent.objects.order_by("seq").values_list("type", flat=True))


def test_a_verified_delivery_is_accepted_once_with_its_receipt(client, sender):
    token = token_for(sender)
    before = LedgerEvent.objects.count()

    response = deliver(client, token, {"say": "hello"})

    assert response.status_code == 200, response.content
    assert response.json()["echoed"] == "hello"
    new = list(LedgerEvent.objects.order_by("seq")[before:])
    assert [e.type for e in new] == ["controlplane.test.echoed", "controlplane.channels.webhook.received"]
    receipt = new[1]
    assert receipt.data == {"adapter": "echo-test", "delivery_id": "d-1"}
    assert receipt.idempotency_key == f"webhook:echo-test:{sender.tenant_id}:d-1"
    assert (receipt.actor, receipt.tenant, receipt.subject) == (
        sender.ref,
        sender.tenant.slug,
        "webhook/echo-test",
    )


def test_a_repeated_delivery_id_is_refused_and_writes_nothing(client, sender):
    token = token_for(sender)
    first = deliver(client, token, {"say": "hello"})
    receipt_seq = LedgerEvent.objects.get(type="controlplane.channels.webhook.received").seq
    written = ledger_types()

    again = deliver(client, token, {"say": "hello again"})

    assert first.status_code == 200
    assert again.status_code == 409
    body = again.json()
    assert (body["code"], body["seq"], body["duplicate_of"]) == (
        "DUPLICATE_EVENT",
        receipt_seq,
        "delivery id",
    )
    assert body["request_id"] == again["X-Request-ID"]
    assert ledger_types() == written
    assert selectors.webhook_rejection_counts(adapter="echo-test") == {"DUPLICATE_EVENT": 1}


def test_a_concurrent_twin_that_lands_first_undoes_the_accept(client, sender):
    token = token_for(sender)
    twin_key = f"webhook:echo-test:{sender.tenant_id}:d-9"
    written = ledger_types()

    response = deliver(client, token, {"say": "hello", "twin": twin_key}, delivery="d-9")

    assert response.status_code == 409
    assert response.json()["code"] == "DUPLICATE_EVENT"
    assert ledger_types() == written


def test_deliveries_without_an_id_are_the_domains_to_deduplicate(client, sender):
    token = token_for(sender)

    responses = [deliver(client, token, {"say": "hi"}, delivery=None) for _ in range(2)]

    assert [r.status_code for r in responses] == [200, 200]
    assert ledger_types().count("controlplane.test.echoed") == 2
    assert "controlplane.channels.webhook.received" not in ledger_types()


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"signature": ""}, 401, "SIGNATURE_MISSING"),
        ({"signature": "0" * 64}, 401, "SIGNATURE_INVALID"),
        ({"timestamp": "1"}, 401, "STALE_TIMESTAMP"),
    ],
)
def test_verification_refusals_carry_the_code_are_counted_and_write_nothing(
    client, sender, overrides, status, code
):
    token = token_for(sender)
    written = ledger_types()

    response = deliver(client, token, {"say": "hello"}, **overrides)

    assert response.status_code == status
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert ledger_types() == written
    assert selectors.webhook_rejection_counts(adapter="echo-test") == {code: 1}


def test_a_refusal_by_the_adapter_writes_nothing_and_the_id_stays_free(client, sender):
    token = token_for(sender)
    written = ledger_types()

    refused = deliver(client, token, {"refuse": True})

    assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_FAILED")
    assert ledger_types() == written
    assert deliver(client, token, {"say": "now"}).status_code == 200


def test_the_token_and_the_adapters_capability_come_first(client, sender):
    outsider_token = token_for(PrincipalFactory(tenant=sender.tenant, name="no-grant"))
    written = ledger_types()

    anonymous = deliver(client, None, {"say": "hello"})
    ungranted = deliver(client, outsider_token, {"say": "hello"}, signature="bad")

    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "AUTH_REQUIRED")
    assert (ungranted.status_code, ungranted.json()["code"]) == (403, "CAPABILITY_MISSING")
    assert ledger_types() == written
    assert selectors.webhook_rejection_counts(adapter="echo-test") == {
        "AUTH_REQUIRED": 1,
        "CAPABILITY_MISSING": 1,
    }


def test_registering_a_name_or_a_path_twice_raises():
    class Impostor(EchoWebhook):
        """Another adapter claiming the echo adapter's name."""

    class PathThief(EchoWebhook):
        """Another adapter claiming the echo adapter's path."""

        name = "path-thief"

    register_webhook_adapter(ECHO)  # the same instance again (ready() run twice): nothing changes

    with pytest.raises(ValueError, match="already registered"):
        register_webhook_adapter(Impostor())
    with pytest.raises(ValueError, match="already served"):
        register_webhook_adapter(PathThief())
    assert webhook_adapter("echo-test") is ECHO
    with pytest.raises(LookupError):
        webhook_adapter("path-thief")


def test_incidents_registers_alertmanager_and_grafana_at_their_urls():
    assert webhook_adapter("alertmanager") is ALERTMANAGER
    assert webhook_adapter("grafana") is GRAFANA
    for adapter, url in (
        (ALERTMANAGER, "/api/v1/signals/alertmanager/"),
        (GRAFANA, "/api/v1/signals/grafana/"),
    ):
        match = resolve(url)
        assert issubclass(match.func.view_class, WebhookView)
        assert match.func.view_class.adapter_name == adapter.name
        assert reverse(adapter.route_name()) == url
