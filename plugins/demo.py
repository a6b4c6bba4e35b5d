"""Demo plugins for `manage.py demo` (idempotent): one healthy, one degraded waiting in the review queue,
one quarantined (a heartbeat signed with the wrong key). Their evidence is real -- heartbeats signed and
verified through the same service as a plugin's -- and so is their honesty: with no plugin process
heartbeating, the supervisor marks them crashed once their (long, demo) intervals are missed."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from controlplane.identity import services as identity
from controlplane.identity.models import PrincipalKind, Tenant
from controlplane.kernel import signatures
from controlplane.kernel.errors import ControlPlaneError
from plugins.models import Plugin
from plugins.services import heartbeat_ingest, plugin_register, plugins_supervise

DEMO = [
    # name, kind, provides, checks of its heartbeat, signed with its own key
    ("demo-runner", "runner", {"runners": ["demo-runner"]}, {"queue": "ok"}, True),
    ("demo-bridge", "chat_bridge", {}, {"slack_api": "degraded"}, True),
    ("demo-advisor", "advisory", {}, {}, False),
]


def plugins_demo(*, tenant: Tenant, actor: str) -> None:
    """Register the demo plugins of `tenant` and give each its evidence, once."""
    if Plugin.objects.filter(name__in=[name for name, *_ in DEMO]).exists():
        return
    now = timezone.now()
    for name, kind, provides, checks, honest in DEMO:
        key = Ed25519PrivateKey.generate()
        principal = identity.principal_ensure(
            tenant=tenant,
            name=f"{name}-svc",
            kind=PrincipalKind.SERVICE,
            capabilities=["plugins.heartbeat"],
            actor=actor,
        )
        plugin_register(
            manifest={
                "name": name,
                "version": "1.0.0",
                "kind": kind,
                "description": "demo plugin (manage.py demo)",
                "principal": principal.name,
                "public_key": signatures.ed25519_public_key_text(key),
                "heartbeat_interval_seconds": 3600,
                "provides": provides,
                "compatible_contracts": {"runtime": ">=1,<2"},
            },
            actor=actor,
            tenant=tenant,
            at=now - timedelta(seconds=60),
        )
        body = json.dumps(
            {"instance": uuid.uuid4().hex[:12], "sequence": 1, "version": "1.0.0", "checks": checks}
        )
        webhook_id, stamp = f"demo-{name}", int((now - timedelta(seconds=30)).timestamp())
        signer = key if honest else Ed25519PrivateKey.generate()
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signatures.sign_ed25519(signer, webhook_id, stamp, body.encode()),
        }
        with contextlib.suppress(ControlPlaneError):  # the forged one is refused (and quarantines it)
            heartbeat_ingest(
                name=name,
                principal=principal,
                headers=headers,
                body=body.encode(),
                at=now - timedelta(seconds=30),
            )
    plugins_supervise(now=now, names=[name for name, *_ in DEMO], probe=False)
