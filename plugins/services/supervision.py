"""The supervision pass: probe, decide every plugin from its evidence, ledger the transitions.

One pass (`plugins_supervise`, the beat task every CONTROLPLANE_PLUGIN_SUPERVISE_SECONDS):

1. probes each non-quarantined plugin's health URL (GET, `probe_timeout_seconds`, 1 s by default) outside
   any transaction, and records the answer as evidence;
2. locks the plugins (name order) and decides each with the pure `plugins.supervisor.decide`, in
   dependency order, so a dependent sees its dependencies as decided at this tick;
3. applies what changed: a transition is one `controlplane.plugin.transitioned` event carrying the evidence
   and the tick it was decided on (the replayer re-derives it); transitions *down* are appended dependents
   first (shut down in reverse dependency order), transitions *up* dependencies first (started in order);
   a low-severity degradation opens a review item; a restart request is ledgered and sent after commit;
4. ledgers a digest of the heartbeats each plugin sent since its last one (every
   CONTROLPLANE_PLUGIN_DIGEST_SECONDS);
5. after commit, when a plugin became healthy, re-checks the steps the plugins gate holds.
"""

from __future__ import annotations

import hashlib
import logging
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.kernel import signatures
from controlplane.kernel.canonical import canonical_bytes, format_time
from plugins.manifest import PROBES_KEPT, incompatibility, topological_order
from plugins.models import Plugin, PluginState, ReviewItem, ReviewStatus
from plugins.services.common import append
from plugins.supervisor import Decision, Evidence, decide, parse_time

logger = logging.getLogger(__name__)

DOWN = {
    PluginState.CRASHED,
    PluginState.BLOCKED,
    PluginState.QUARANTINED,
    PluginState.DEGRADED,
    PluginState.UNKNOWN,
}
_MOVES = {
    PluginState.HEALTHY: "mark_healthy",
    PluginState.DEGRADED: "mark_degraded",
    PluginState.CRASHED: "mark_crashed",
    PluginState.BLOCKED: "mark_blocked",
    PluginState.QUARANTINED: "quarantine",
}
_PROBE_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _t(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def evidence_of(plugin: Plugin, dependencies: dict[str, str]) -> Evidence:
    """The evidence summary on the row, as the supervisor reads it."""
    return Evidence(
        state=plugin.state,
        since=plugin.evidence_since,
        interval=plugin.heartbeat_interval_seconds,
        tuning=plugin.tuning,
        last_heartbeat_at=plugin.last_heartbeat_at,
        instance=plugin.last_instance,
        sequence=plugin.last_sequence,
        checks=plugin.last_checks,
        restarts=tuple(parse_time(r) for r in plugin.restarts),
        violations=plugin.violations,
        incompatible=incompatibility(plugin.manifest),
        probe_url=bool(plugin.health_url),
        probes=tuple((parse_time(p["at"]), p["ok"]) for p in plugin.probes),
        dependencies=dependencies,
        blocked_since=plugin.blocked_since,
        control_url=bool(plugin.control_url),
        backoff_seconds=plugin.backoff_seconds,
        next_restart_at=plugin.next_restart_at,
        healthy_since=plugin.healthy_since,
    )


# --- probes --------------------------------------------------------------------------------------------


def probe(url: str, *, timeout: float) -> dict[str, Any]:
    """GET the health URL: ok when it answers 2xx within the timeout."""
    started = time.monotonic()
    try:
        with _PROBE_OPENER.open(urllib.request.Request(url, method="GET"), timeout=timeout) as reply:  # noqa: S310
            status = reply.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {
            "ok": False,
            "status": 0,
            "error": type(exc).__name__,
            "ms": int((time.monotonic() - started) * 1000),
        }
    return {"ok": 200 <= status < 300, "status": status, "ms": int((time.monotonic() - started) * 1000)}


def plugins_probe(*, now: datetime, names: list[str] | None = None) -> int:
    """Probe every live plugin with a health URL and record the result; returns how many were probed."""
    plugins = Plugin.objects.exclude(health_url="").exclude(state=PluginState.QUARANTINED)
    if names is not None:
        plugins = plugins.filter(name__in=names)
    probed = 0
    for pk, url, tuning in plugins.values_list("pk", "health_url", "tuning"):
        result = probe(url, timeout=float(tuning.get("probe_timeout_seconds", 1)))
        with transaction.atomic():
            plugin = Plugin.objects.select_for_update().filter(pk=pk).first()
            if plugin is None:
                continue
            plugin.probes = [*plugin.probes, {"at": format_time(now), **result}][-PROBES_KEPT:]
            plugin.save(update_fields=["probes"])
        probed += 1
    return probed


# --- the pass ------------------------------------------------------------------------------------------


def plugins_supervise(
    *, now: datetime | None = None, names: list[str] | None = None, probe: bool = True
) -> dict[str, int]:
    """One supervision pass over every plugin (or those `names`); returns counts of what it did."""
    now = now or timezone.now()
    probed = plugins_probe(now=now, names=names) if probe else 0
    restarts: list[tuple[str, dict[str, Any]]] = []
    counts = {"plugins": 0, "transitions": 0, "reviews": 0, "restarts": 0, "digests": 0, "probed": probed}
    recovered = False
    with transaction.atomic():
        query = Plugin.objects.select_for_update(of=("self",)).select_related("tenant").order_by("name")
        if names is not None:
            query = query.filter(name__in=names)
        plugins = {p.name: p for p in query}
        graph = {name: [d["name"] for d in p.manifest.get("depends_on", [])] for name, p in plugins.items()}
        outside = {d for deps in graph.values() for d in deps if d not in plugins}
        states = dict(Plugin.objects.filter(name__in=outside).values_list("name", "state")) if outside else {}
        decided: list[tuple[Plugin, Evidence, Decision]] = []
        for name in topological_order(graph):
            plugin = plugins[name]
            deps = {d: states.get(d, "unregistered") for d in graph[name]}
            evidence = evidence_of(plugin, deps)
            decision = decide(evidence, now)
            if decision.state == PluginState.UNKNOWN and plugin.state != PluginState.UNKNOWN:
                decision = _hold_state(plugin, decision)  # no fresh probe yet: nothing proves a change
            states[name] = decision.state
            decided.append((plugin, evidence, decision))
        counts["plugins"] = len(decided)
        down = [d for d in decided if d[2].state != d[0].state and d[2].state in DOWN]
        up = [d for d in decided if d[2].state != d[0].state and d[2].state not in DOWN]
        for plugin, evidence, decision in [*reversed(down), *up]:
            _transition(plugin, evidence, decision, now)
            counts["transitions"] += 1
            recovered |= decision.state == PluginState.HEALTHY
        for plugin, evidence, decision in decided:
            counts["reviews"] += _review_open(plugin, evidence, decision, now)
            if decision.restart:
                restarts.append((plugin.name, _restart_record(plugin, decision, now)))
                counts["restarts"] += 1
            _follow_up_save(plugin, decision)
            counts["digests"] += _digest(plugin, now)
    for name, request in restarts:
        transaction.on_commit(lambda name=name, request=request: _restart_schedule(name, request))
    if recovered:
        transaction.on_commit(_recheck_held_steps)
    return counts


def _hold_state(plugin: Plugin, decision: Decision) -> Decision:
    return Decision(
        plugin.state,
        plugin.state_codes[0] if plugin.state_codes else "",
        plugin.state_detail,
        plugin.severity,
        backoff_seconds=decision.backoff_seconds,
        next_restart_at=decision.next_restart_at,
        healthy_since=plugin.healthy_since,
        blocked_since=plugin.blocked_since,
    )


def _transition(plugin: Plugin, evidence: Evidence, decision: Decision, now: datetime) -> None:
    previous = plugin.state
    getattr(plugin, _MOVES[decision.state])()
    plugin.state_codes = [decision.code]
    plugin.state_detail = decision.detail[:300]
    plugin.state_since = now
    plugin.severity = decision.severity if decision.state == PluginState.QUARANTINED else ""
    event = append(
        plugin,
        "transitioned",
        {
            "from": previous,
            "to": decision.state,
            "detail": decision.detail,
            "severity": decision.severity,
            "tick": format_time(now),
            "evidence": evidence.as_data(),
            "decision": decision.as_data(),
        },
        actor="system",
        at=now,
        codes=[decision.code],
    )
    if decision.state == PluginState.QUARANTINED:
        plugin.quarantine_event = event.hash
    plugin.save(
        update_fields=["state", "state_codes", "state_detail", "state_since", "severity", "quarantine_event"]
    )
    if decision.code == "PLUGIN_CRASH_LOOP":
        from plugins.signals import crash_loop_signal

        # After commit: the incident pipeline locks before it appends (controlplane.kernel.sinks).
        transaction.on_commit(lambda: crash_loop_signal(plugin=plugin, evidence=evidence, at=now))


def _follow_up_save(plugin: Plugin, decision: Decision) -> None:
    """The supervisor's own follow-up state (back-off, healthy/blocked since), saved only when it moved."""
    changed = {
        "backoff_seconds": decision.backoff_seconds,
        "next_restart_at": decision.next_restart_at,
        "healthy_since": decision.healthy_since,
        "blocked_since": decision.blocked_since,
    }
    fields = [k for k, v in changed.items() if getattr(plugin, k) != v]
    if not fields:
        return
    for key in fields:
        setattr(plugin, key, changed[key])
    plugin.save(update_fields=fields)


def evidence_hash(evidence: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(evidence)).hexdigest()


def _review_open(plugin: Plugin, evidence: Evidence, decision: Decision, now: datetime) -> int:
    if not decision.review or plugin.state == PluginState.QUARANTINED:
        return 0
    if ReviewItem.objects.filter(plugin=plugin, code=decision.code, status=ReviewStatus.OPEN).exists():
        return 0
    data = evidence.as_data()
    item = ReviewItem.objects.create(
        plugin=plugin,
        code=decision.code,
        detail=decision.detail[:300],
        severity=decision.severity or "low",
        evidence=data,
        evidence_hash=evidence_hash(data),
        opened_at=now,
    )
    append(
        plugin,
        "review.opened",
        {
            "item": item.pk,
            "detail": item.detail,
            "severity": item.severity,
            "evidence_sha256": item.evidence_hash,
        },
        actor="system",
        at=now,
        codes=[decision.code],
    )
    return 1


def _restart_record(plugin: Plugin, decision: Decision, now: datetime) -> dict[str, Any]:
    plugin.restart_requests += 1
    plugin.save(update_fields=["restart_requests"])
    request = {
        "plugin": plugin.name,
        "attempt": plugin.restart_requests,
        "requested_at": format_time(now),
        "next_restart_at": _t(decision.next_restart_at),
        "backoff_seconds": decision.backoff_seconds,
    }
    append(
        plugin,
        "restart.requested",
        {k: v for k, v in request.items() if k != "plugin"},
        actor="system",
        at=now,
        codes=["PLUGIN_HEARTBEAT_MISSED"],
    )
    return request


def _restart_schedule(name: str, request: dict[str, Any]) -> None:
    from plugins.tasks import plugin_restart_task

    if settings.REDIS_URL:
        plugin_restart_task.delay(name, request)
    else:
        restart_request_send(name=name, request=request)


def restart_request_send(*, name: str, request: dict[str, Any]) -> dict[str, Any]:
    """POST the restart request to the control URL, signed v1 with CONTROLPLANE_PLUGIN_CONTROL_SECRET.

    The answer is not evidence of health (only heartbeats are); it is logged. Returns what happened."""
    plugin = Plugin.objects.filter(name=name).first()
    if plugin is None or not plugin.control_url:
        return {"sent": False, "error": "no control URL"}
    secret = settings.CONTROLPLANE_PLUGIN_CONTROL_SECRET
    if not secret:
        logger.warning("plugin %s: CONTROLPLANE_PLUGIN_CONTROL_SECRET is not set; restart not sent", name)
        return {"sent": False, "error": "CONTROLPLANE_PLUGIN_CONTROL_SECRET is not set"}
    body = orjson.dumps({"action": "restart", **request})
    webhook_id = f"restart-{name}-{request['attempt']}"
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures.sign_hmac(secret, webhook_id, timestamp, body),
    }
    try:
        with _PROBE_OPENER.open(
            urllib.request.Request(plugin.control_url, data=body, headers=headers, method="POST"),  # noqa: S310
            timeout=float(plugin.tuning.get("probe_timeout_seconds", 1)),
        ) as reply:
            return {"sent": True, "status": reply.status}
    except urllib.error.HTTPError as exc:
        return {"sent": True, "status": exc.code}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        logger.info("plugin %s: restart request failed: %s", name, type(exc).__name__)
        return {"sent": False, "error": type(exc).__name__}


def _digest(plugin: Plugin, now: datetime) -> int:
    if not plugin.digest_count or plugin.digest_first_at is None:
        return 0
    if now - plugin.digest_first_at < timedelta(seconds=settings.CONTROLPLANE_PLUGIN_DIGEST_SECONDS):
        return 0
    append(
        plugin,
        "heartbeats.digested",
        {
            "count": plugin.digest_count,
            "first_at": format_time(plugin.digest_first_at),
            "last_at": _t(plugin.last_heartbeat_at),
            "instance": plugin.last_instance,
            "last_sequence": plugin.last_sequence,
            "bodies_sha256": plugin.digest_hash,
        },
        actor="system",
        at=now,
    )
    plugin.digest_count, plugin.digest_first_at, plugin.digest_hash = 0, None, ""
    plugin.save(update_fields=["digest_count", "digest_first_at", "digest_hash"])
    return 1


def _recheck_held_steps() -> None:
    from controlplane.runtime.services import held_steps_recheck

    held_steps_recheck(gate="plugins")
