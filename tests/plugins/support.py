"""What the plugins tests share: a plugin with its own key and token, signed heartbeats, and ticks."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.identity.models import Principal, Tenant
from controlplane.kernel import signatures
from plugins import services
from plugins.models import Plugin
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for


def manifest(name: str, *, key: Ed25519PrivateKey, principal: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "kind": "runner",
        "principal": principal,
        "public_key": signatures.ed25519_public_key_text(key),
        "heartbeat_interval_seconds": 10,
        **extra,
    }


@dataclass
class TestPlugin:
    """A registered plugin and what it holds: its key, its principal and token, its instance and sequence."""

    plugin: Plugin
    key: Ed25519PrivateKey
    principal: Principal
    token: str
    instance: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    sequence: int = 0

    @property
    def name(self) -> str:
        return self.plugin.name

    def refresh(self) -> Plugin:
        self.plugin.refresh_from_db()
        return self.plugin

    def body(self, **extra: Any) -> bytes:
        self.sequence += 1
        return json.dumps(
            {"instance": self.instance, "sequence": self.sequence, "version": "1.0.0", "checks": {}, **extra}
        ).encode()

    def headers(
        self, body: bytes, *, key: Ed25519PrivateKey | None = None, at: int | None = None
    ) -> dict[str, str]:
        webhook_id = f"hb-{uuid.uuid4().hex}"
        stamp = at if at is not None else int(time.time())
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signatures.sign_ed25519(key or self.key, webhook_id, stamp, body),
        }

    def beat(self, *, at: datetime | None = None, **extra: Any) -> dict[str, Any]:
        """One good heartbeat through the service (the API test sends them over HTTP)."""
        body = self.body(**extra)
        stamp = int(at.timestamp()) if at else None
        return services.heartbeat_ingest(
            name=self.name, principal=self.principal, headers=self.headers(body, at=stamp), body=body, at=at
        )

    def restart(self) -> None:
        self.instance, self.sequence = uuid.uuid4().hex[:12], 0


def register(
    name: str,
    *,
    tenant: Tenant | None = None,
    actor: Principal | str = "cli",
    shared: bool = False,
    **extra: Any,
) -> TestPlugin:
    tenant = tenant or TenantFactory(slug="acme")
    key = Ed25519PrivateKey.generate()
    principal = PrincipalFactory(tenant=tenant, name=f"{name}-svc", capabilities=["plugins.heartbeat"])
    if shared and not isinstance(actor, Principal):  # a shared plugin: registered by a platform principal
        actor = PrincipalFactory(
            tenant=tenant, name=f"{name}-root", human=True, capabilities=["platform.plugins.manage"]
        )
    plugin = services.plugin_register(
        manifest=manifest(name, key=key, principal=principal.name, **extra),
        actor=actor,
        tenant=None if shared else tenant,
    )
    return TestPlugin(plugin=plugin, key=key, principal=principal, token=token_for(principal))


def later(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)


class Endpoint:
    """A small real HTTP server of the test's own: answers GET with `status`, records POSTs (restarts)."""

    def __init__(self, status: int = 200):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        endpoint = self
        self.status = status
        self.posts: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def plugin_events(name: str | None = None, type_: str | None = None):
    from controlplane.ledger.models import LedgerEvent

    events = LedgerEvent.objects.filter(type__startswith="controlplane.plugin.").order_by("seq")
    if name:
        events = events.filter(subject=f"plugin/{name}")
    if type_:
        events = events.filter(type=f"controlplane.plugin.{type_}")
    return list(events)


def assert_events_match_contracts() -> None:
    from controlplane.kernel.contracts import REGISTRY

    failures = {
        e.seq: REGISTRY.for_ledger_type(e.type).errors(e.data)
        for e in plugin_events()
        if REGISTRY.for_ledger_type(e.type) is None or REGISTRY.for_ledger_type(e.type).errors(e.data)
    }
    assert failures == {}


def write_every_plugin_event() -> None:
    """Every plugins event through the services (for the contract drift test): registered, transitioned,
    review opened and decided, quarantined, restart requested, heartbeats digested, released."""
    from django.conf import settings
    from django.test import override_settings
    from django.utils import timezone

    from approvals import services as approvals
    from controlplane.policy import services as policy

    policy.profile_bootstrap(environment="dev")
    t0 = timezone.now() + timedelta(seconds=1)
    tenant = TenantFactory(slug="acme")
    alice = PrincipalFactory(tenant=tenant, name="plugins-alice", human=True)
    bob = PrincipalFactory(tenant=tenant, name="plugins-bob", human=True, capabilities=["approvals.decide"])
    flaky = register("contract-flaky", tenant=tenant, control_url="http://127.0.0.1:9/")
    flaky.beat(at=t0, checks={"queue": "degraded"})
    with override_settings(CONTROLPLANE_PLUGIN_DIGEST_SECONDS=0):
        services.plugins_supervise(now=later(t0, 1))  # degraded, a review item, a digest
    item = flaky.plugin.review_items.get()
    services.review_decide(item_id=item.pk, actor=alice, decision="quarantine", reason="contract test")
    assert settings.CONTROLPLANE_PLUGIN_DIGEST_SECONDS > 0
    approval = services.plugin_release_request(name=flaky.name, actor=alice, reason="contract test")
    approvals.approval_decide(
        approval=approval, actor=bob, decision="approve", reason="seen", content_hash=approval.content_hash
    )
    flaky.beat(at=later(t0, 2))
    services.plugins_supervise(now=later(t0, 3), probe=False)  # healthy again
    services.plugins_supervise(now=later(t0, 40), probe=False)  # crashed: a restart is requested
    services.plugin_quarantine(name=flaky.name, actor=alice, reason="contract test")
