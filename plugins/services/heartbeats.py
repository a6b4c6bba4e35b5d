"""Heartbeat ingest: a signed heartbeat becomes evidence on the plugin's row; nothing else changes.

The plugin authenticates with its own principal's API token (the view) and signs the body with its own
Ed25519 key, Standard Webhooks `v1a` (`controlplane.kernel.signatures`). Heartbeats are not ledgered one by
one: the row keeps a rolling SHA-256 over the accepted ones, and the supervision pass ledgers a digest of
them periodically. A refused heartbeat changes nothing but, when it is a signature policy violation (no
signature, an unknown key or scheme, a bad signature, an old sequence), the plugin's violation count, and
the supervisor decides on the plugin at once (quarantined, PLUGIN_SIGNATURE_INVALID).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.kernel import signatures
from controlplane.kernel.canonical import format_time
from controlplane.kernel.errors import ControlPlaneError
from plugins.models import Plugin

VIOLATIONS = {"SIGNATURE_MISSING", "PLUGIN_KEY_UNKNOWN", "PLUGIN_SIGNATURE_INVALID", "PLUGIN_SEQUENCE_STALE"}
CHECK_VALUES = {"ok", "degraded", "failing"}
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_WEBHOOK_ID = re.compile(r"^[\x21-\x2d\x2f-\x7e]{1,200}$")
_INSTANCE = re.compile(r"^[\x21-\x7e]{1,100}$")


def _verify(plugin: Plugin, headers: dict[str, str], body: bytes, now: datetime) -> None:
    webhook_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "").strip()
    signature = headers.get("webhook-signature", "").strip()
    if not signature:
        raise ControlPlaneError("SIGNATURE_MISSING", "a heartbeat must carry webhook-signature (v1a)")
    if not _WEBHOOK_ID.match(webhook_id) or not _TIMESTAMP.match(timestamp):
        raise ControlPlaneError(
            "PLUGIN_SIGNATURE_INVALID", "webhook-id and an integer webhook-timestamp are required"
        )
    skew = int(timestamp) - int(now.timestamp())
    tolerance = settings.CONTROLPLANE_EVENT_TOLERANCE_SECONDS
    if abs(skew) > tolerance:
        raise ControlPlaneError(
            "STALE_TIMESTAMP", f"webhook-timestamp is {abs(skew)}s off; tolerance {tolerance}s"
        )
    candidates = [
        s.raw for s in signatures.parse_signatures(signature) if s.version == signatures.ED25519_VERSION
    ]
    if not candidates:
        raise ControlPlaneError(
            "PLUGIN_KEY_UNKNOWN", "heartbeats are signed v1a (Ed25519) with the plugin's registered key"
        )
    content = signatures.signed_content(webhook_id, int(timestamp), body)
    if not signatures.ed25519_matches(plugin.public_key, content, candidates):
        raise ControlPlaneError("PLUGIN_SIGNATURE_INVALID", "no v1a signature verifies with the plugin's key")


def _parse(body: bytes) -> dict[str, Any]:
    try:
        beat = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ControlPlaneError("PLUGIN_HEARTBEAT_INVALID", "the body is not JSON") from exc
    if not isinstance(beat, dict):
        raise ControlPlaneError("PLUGIN_HEARTBEAT_INVALID", "the body is a JSON object")
    instance, sequence = beat.get("instance"), beat.get("sequence")
    if not isinstance(instance, str) or not _INSTANCE.match(instance):
        raise ControlPlaneError("PLUGIN_HEARTBEAT_INVALID", "instance: 1-100 printable characters")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or not 0 < sequence < 2**62:
        raise ControlPlaneError("PLUGIN_HEARTBEAT_INVALID", "sequence: a positive integer")
    checks = beat.get("checks", {})
    if (
        not isinstance(checks, dict)
        or len(checks) > 50
        or any(not isinstance(k, str) or len(k) > 64 or v not in CHECK_VALUES for k, v in checks.items())
    ):
        raise ControlPlaneError("PLUGIN_HEARTBEAT_INVALID", "checks: {name: ok | degraded | failing}")
    version = beat.get("version", "")
    if not isinstance(version, str) or len(version) > 32:
        raise ControlPlaneError("PLUGIN_HEARTBEAT_INVALID", "version: at most 32 characters")
    reported = {k: beat[k] for k in ("restart_count", "backoff") if k in beat}
    if not isinstance(reported.get("restart_count", 0), int) or not isinstance(
        reported.get("backoff", {}), dict
    ):
        raise ControlPlaneError("PLUGIN_HEARTBEAT_INVALID", "restart_count is an integer, backoff an object")
    if len(orjson.dumps(reported)) > 2000:
        raise ControlPlaneError("PLUGIN_HEARTBEAT_INVALID", "restart_count and backoff: at most 2000 bytes")
    return {
        "instance": instance,
        "sequence": sequence,
        "checks": checks,
        "version": version,
        "reported": reported,
    }


def heartbeat_ingest(
    *, name: str, principal: Principal, headers: dict[str, str], body: bytes, at: datetime | None = None
) -> dict[str, Any]:
    """Verify and record one heartbeat of plugin `name` sent by `principal`.

    Refusals: PLUGIN_NOT_FOUND (not in the principal's reach), PLUGIN_PRINCIPAL_MISMATCH, SIGNATURE_MISSING,
    STALE_TIMESTAMP, PLUGIN_KEY_UNKNOWN, PLUGIN_SIGNATURE_INVALID, PLUGIN_HEARTBEAT_INVALID,
    PLUGIN_SEQUENCE_STALE. Violations are counted (see the module docstring); nothing else is written.
    """
    at = at or timezone.now()
    violation: ControlPlaneError | None = None
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            # A heartbeat is evidence, not an authoritative record: one lost in a server crash is replaced
            # by the next. So its own transaction does not wait for the WAL flush (PostgreSQL's documented
            # per-transaction trade-off); ledger transactions, and any caller's, keep synchronous commit.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        plugin = (
            Plugin.objects.select_for_update(of=("self",)).select_related("tenant").filter(name=name).first()
        )
        if plugin is None or plugin.tenant_id not in (None, principal.tenant_id):
            raise ControlPlaneError("PLUGIN_NOT_FOUND", f"no plugin {name!r} in reach")
        if plugin.principal_id != principal.pk:
            raise ControlPlaneError(
                "PLUGIN_PRINCIPAL_MISMATCH", f"{principal.ref} is not plugin {name}'s principal"
            )
        try:
            _verify(plugin, headers, body, at)
            beat = _parse(body)
            if beat["instance"] == plugin.last_instance and beat["sequence"] <= plugin.last_sequence:
                raise ControlPlaneError(
                    "PLUGIN_SEQUENCE_STALE",
                    f"sequence {beat['sequence']} is not after {plugin.last_sequence} "
                    f"of instance {beat['instance']}",
                )
        except ControlPlaneError as error:
            if error.code not in VIOLATIONS:
                raise
            violation = error
            Plugin.objects.filter(pk=plugin.pk).update(
                violations=F("violations") + 1,
                last_violation={"code": error.code, "at": format_time(at), "detail": error.detail[:200]},
            )
        else:
            _record(plugin, beat, body, at)
            return {
                "plugin": plugin.name,
                "accepted": True,
                "sequence": beat["sequence"],
                "state": plugin.state,
            }
    # A violation is high severity: decide on this plugin now rather than at the next tick.
    from plugins.services.supervision import plugins_supervise

    plugins_supervise(now=at, names=[name], probe=False)
    raise violation


def _record(plugin: Plugin, beat: dict[str, Any], body: bytes, at: datetime) -> None:
    restarts = list(plugin.restarts)
    if plugin.last_instance and beat["instance"] != plugin.last_instance:
        restarts.append(format_time(at))  # a new instance id: the plugin restarted
    horizon = format_time(at - timedelta(seconds=plugin.tuning.get("restart_period_seconds", 300)))
    restarts = [r for r in restarts if r > horizon][-100:]
    digest = hashlib.sha256(plugin.digest_hash.encode() + hashlib.sha256(body).digest()).hexdigest()
    plugin.last_heartbeat_at = at
    plugin.last_instance = beat["instance"]
    plugin.last_sequence = beat["sequence"]
    plugin.last_version = beat["version"]
    plugin.last_checks = beat["checks"]
    plugin.last_reported = beat["reported"]
    plugin.restarts = restarts
    plugin.digest_count += 1
    plugin.digest_first_at = plugin.digest_first_at or at
    plugin.digest_hash = digest
    plugin.save(
        update_fields=[
            "last_heartbeat_at",
            "last_instance",
            "last_sequence",
            "last_version",
            "last_checks",
            "last_reported",
            "restarts",
            "digest_count",
            "digest_first_at",
            "digest_hash",
        ]
    )
