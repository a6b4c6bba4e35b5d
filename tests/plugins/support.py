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

    def headers(self, body: bytes, *, key: Ed25519PrivateKey | None = None, at: int | None = None) -> dict[str, str]:
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
    plugin = services.plugin_register(
        manifest=manifest(name, key=key, principal=principal.name, **extra),
        actor=actor,
        tenant=None if shared else tenant,
    )
    return TestPlugin(plugin=plugin, key=key, principal=principal, token=token_for(principal))


def later(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)
