"""Plugins: signed heartbeat ingest against the no-op view, and one supervision pass over many plugins.

- heartbeats/s: signed heartbeats (Ed25519 `v1a`, the plugin's own bearer token) through Django's full
  stack -- URL resolving, every middleware, DRF, authentication, the capability check, the signature, the
  row lock and the evidence update -- in one process, closed loop (Django's test client, no sockets),
  against `POST /bench/noop/` (the same middleware and DRF, doing nothing) in the same run. Goal: at least
  0.5 of the no-op rate.
- a supervision pass: `plugins_supervise` over N plugins (10,000 by default) whose evidence is fresh, the
  steady state of the beat (nothing changes, nothing is written), and a pass in which 1 % of them have
  missed their heartbeats (each a ledgered transition with its evidence); against a raw read of the same
  rows (`values_list` of the evidence columns). Goal: the steady pass under 1 s of the beat's 5 s.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

GOAL_HEARTBEAT_RATIO = 0.5
GOAL_PASS_SECONDS = 1.0


def _timed(count: int, call: Callable[[int], Any]) -> float:
    for i in range(min(20, count)):  # warm code paths and caches
        call(-1 - i)
    began = time.perf_counter()
    for i in range(count):
        call(i)
    return time.perf_counter() - began


def _heartbeats(count: int) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from django.test import Client

    from bench.urls import NOOP_PATH
    from controlplane.identity import services as identity
    from controlplane.identity.models import PrincipalKind
    from controlplane.kernel import signatures
    from plugins.services import plugin_register

    tenant = identity.tenant_create(slug="bench-plugins", name="Bench plugins", actor="bench")
    principal = identity.principal_ensure(
        tenant=tenant,
        name="bench-plugin",
        kind=PrincipalKind.SERVICE,
        capabilities=["plugins.heartbeat"],
        actor="bench",
    )
    token = identity.token_issue(principal=principal, name="bench", actor="bench").secret
    key = Ed25519PrivateKey.generate()
    plugin_register(
        manifest={
            "name": "bench-plugin",
            "version": "1.0.0",
            "kind": "runner",
            "principal": principal.name,
            "public_key": signatures.ed25519_public_key_text(key),
            "heartbeat_interval_seconds": 10,
        },
        actor="bench",
        tenant=tenant,
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")
    instance = uuid.uuid4().hex[:12]
    sequence = iter(range(1, 10**9))
    refused: list[int] = []

    def heartbeat(_: int) -> None:
        body = json.dumps(
            {"instance": instance, "sequence": next(sequence), "checks": {"queue": "ok"}}
        ).encode()
        webhook_id, stamp = uuid.uuid4().hex, int(time.time())
        reply = client.post(
            "/api/v1/plugins/bench-plugin/heartbeats/",
            data=body,
            content_type="application/json",
            HTTP_WEBHOOK_ID=webhook_id,
            HTTP_WEBHOOK_TIMESTAMP=str(stamp),
            HTTP_WEBHOOK_SIGNATURE=signatures.sign_ed25519(key, webhook_id, stamp, body),
        )
        if reply.status_code != 202:
            refused.append(reply.status_code)

    def noop(_: int) -> None:
        client.post(NOOP_PATH, data=b"{}", content_type="application/json")

    noop_s = _timed(count, noop)
    heartbeat_s = _timed(count, heartbeat)
    return {
        "count": count,
        "noop_per_s": round(count / noop_s, 1),
        "heartbeats_per_s": round(count / heartbeat_s, 1),
        "ratio": round(noop_s / heartbeat_s, 3),
        "refused": len(refused),
    }


def _fleet(count: int) -> None:
    """`count` plugins with fresh heartbeats, healthy already (as the beat finds them in steady state)."""
    from django.utils import timezone

    from controlplane.identity import services as identity
    from controlplane.identity.models import PrincipalKind
    from plugins.manifest import tuning_of
    from plugins.models import Plugin

    tenant = identity.tenant_create(slug="bench-fleet", name="Bench fleet", actor="bench")
    principal = identity.principal_ensure(
        tenant=tenant, name="fleet", kind=PrincipalKind.SERVICE, capabilities=[], actor="bench"
    )
    now = timezone.now()
    manifest = {"name": "x", "version": "1.0.0", "kind": "runner", "heartbeat_interval_seconds": 10}
    Plugin.objects.bulk_create(
        [
            Plugin(
                tenant=tenant,
                name=f"fleet-{i:05d}",
                version="1.0.0",
                kind="runner",
                manifest={**manifest, "name": f"fleet-{i:05d}"},
                manifest_hash="0" * 64,
                principal=principal,
                public_key="A" * 43 + "=",
                heartbeat_interval_seconds=10,
                tuning=tuning_of(manifest),
                registered_by="bench",
                registered_at=now - timedelta(hours=1),
                evidence_since=now - timedelta(hours=1),
                state="healthy",
                state_codes=["PLUGIN_EVIDENCE_OK"],
                healthy_since=now - timedelta(minutes=5),
                last_heartbeat_at=now,
                last_instance="i",
                last_sequence=1,
            )
            for i in range(count)
        ],
        batch_size=2000,
    )


def _passes(count: int) -> dict[str, Any]:
    from django.utils import timezone

    from plugins.models import Plugin
    from plugins.services import plugins_supervise

    _fleet(count)
    fleet = Plugin.objects.filter(name__startswith="fleet-")
    now = timezone.now()
    began = time.perf_counter()
    rows = list(fleet.values_list("name", "state", "last_heartbeat_at", "restarts", "violations", "manifest"))
    raw_s = time.perf_counter() - began
    began = time.perf_counter()
    steady = plugins_supervise(now=now + timedelta(seconds=1), probe=False)
    steady_s = time.perf_counter() - began
    crashing = max(1, count // 100)
    stale = now - timedelta(minutes=5)
    Plugin.objects.filter(pk__in=fleet.order_by("name").values("pk")[:crashing]).update(
        last_heartbeat_at=stale
    )
    began = time.perf_counter()
    crash = plugins_supervise(now=now + timedelta(seconds=2), probe=False)
    crash_s = time.perf_counter() - began
    return {
        "plugins": count,
        "raw_read_s": round(raw_s, 4),
        "rows": len(rows),
        "steady_pass_s": round(steady_s, 4),
        "steady_transitions": steady["transitions"],
        "crash_pass_s": round(crash_s, 4),
        "crash_transitions": crash["transitions"],
        "steady_vs_raw": round(steady_s / raw_s, 1) if raw_s else None,
    }


def plugins_bench(*, heartbeats: int, plugins: int, log: Callable[[str], None]) -> dict[str, Any]:
    log(f"  {heartbeats:,} signed heartbeats and as many no-op requests ...")
    ingest = _heartbeats(heartbeats)
    log(f"  supervision passes over {plugins:,} plugins ...")
    passes = _passes(plugins)
    return {"heartbeats": ingest, "supervision": passes}


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    part = results.get("plugins")
    if not part:
        return []
    ratio, steady = part["heartbeats"]["ratio"], part["supervision"]["steady_pass_s"]
    return [
        {
            "goal": "signed heartbeat ingest vs the no-op view (same run, in process)",
            "target": f">= {GOAL_HEARTBEAT_RATIO}",
            "measured": f"{ratio}",
            "met": ratio >= GOAL_HEARTBEAT_RATIO,
        },
        {
            "goal": f"one supervision pass over {part['supervision']['plugins']:,} plugins",
            "target": f"< {GOAL_PASS_SECONDS:g} s",
            "measured": f"{steady:.3f} s",
            "met": steady < GOAL_PASS_SECONDS,
        },
    ]


def report(results: dict[str, Any]) -> list[str]:
    """The Markdown section of bench/results/latest.md (empty when the part did not run)."""
    part = results.get("plugins")
    if not part:
        return []
    beat, sup = part["heartbeats"], part["supervision"]
    return [
        "## Plugins",
        "",
        "Heartbeats through Django's full stack in one process, closed loop (test client, no sockets), "
        "against the no-op view in the same run; supervision passes in process (no probes).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| no-op requests/s | {beat['noop_per_s']:,.0f} |",
        f"| signed heartbeats/s | {beat['heartbeats_per_s']:,.0f} |",
        f"| heartbeats / no-op | {beat['ratio']} |",
        f"| raw read of {sup['plugins']:,} plugins | {sup['raw_read_s']} s |",
        f"| steady supervision pass ({sup['steady_transitions']} transitions) | {sup['steady_pass_s']} s |",
        f"| pass with {sup['crash_transitions']} crashed (ledgered) | {sup['crash_pass_s']} s |",
        "",
    ]
