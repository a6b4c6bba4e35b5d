"""A crash-looping plugin raises a signal into the incident pipeline (through the kernel's sink registry).

The fingerprint is the plugin's crash signature: its name, the instance ids that restarted and the reason
code, hashed, so the same loop raised twice is one deduplicated signal, and a flapping runner becomes
evidence rather than noise. A shared plugin (no tenant) raises nothing: incidents belong to tenants.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from controlplane.kernel.sinks import RaisedSignal, signal_raise
from plugins.models import Plugin
from plugins.supervisor import Evidence


def crash_signature(*, plugin: Plugin, evidence: Evidence) -> str:
    """What identifies this crash loop: plugin, version, the restart window's first restart, the code."""
    first = min(evidence.restarts).isoformat() if evidence.restarts else ""  # the loop's first restart
    text = f"{plugin.name}\n{plugin.version}\nPLUGIN_CRASH_LOOP\n{first}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def crash_loop_signal(*, plugin: Plugin, evidence: Evidence, at: datetime) -> int:
    if plugin.tenant_id is None:
        return 0
    return signal_raise(
        RaisedSignal(
            tenant=plugin.tenant.slug,
            source="plugins",
            service=f"plugin-{plugin.name}",
            name="PluginCrashLoop",
            severity="high",
            fingerprint=crash_signature(plugin=plugin, evidence=evidence),
            summary=f"plugin {plugin.name} crash-looped: {len(evidence.restarts)} restarts",
            at=min(evidence.restarts) if evidence.restarts else at,  # the loop's start: one signal per loop
            labels={"plugin": plugin.name, "kind": plugin.kind, "version": plugin.version},
            data={"restarts": len(evidence.restarts)},
        )
    )
