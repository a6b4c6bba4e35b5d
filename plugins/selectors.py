"""Reads of the plugins app for the API, the console and the CLI. Tenant-scoped like every read.

A tenant principal sees its tenant's plugins and the shared ones (which its steps may depend on); a
platform principal (a platform grant) sees every plugin.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from controlplane.identity.models import Principal
from controlplane.identity.scope import is_platform_principal
from controlplane.kernel.canonical import format_time
from controlplane.kernel.reasons import CATALOGUE
from controlplane.ledger.models import LedgerEvent
from plugins.manifest import topological_order
from plugins.models import Plugin, PluginState, ReviewItem, ReviewStatus


def plugins_visible(*, principal: Principal) -> QuerySet[Plugin]:
    plugins = Plugin.objects.select_related("tenant").prefetch_related("provisions").order_by("name")
    if is_platform_principal(principal):
        return plugins
    return plugins.filter(Q(tenant_id=principal.tenant_id) | Q(tenant__isnull=True))


def plugin_visible(*, principal: Principal, name: str) -> Plugin | None:
    return plugins_visible(principal=principal).filter(name=name).first()


def _t(value) -> str | None:
    return format_time(value) if value is not None else None


def plugin_health(plugin: Plugin) -> dict[str, Any]:
    """What every surface shows of a plugin's health: never green without evidence."""
    return {
        "name": plugin.name,
        "tenant": plugin.scope,
        "kind": plugin.kind,
        "version": plugin.version,
        "state": plugin.state,
        "healthy": plugin.state == PluginState.HEALTHY,
        "reason_codes": list(plugin.state_codes),
        "detail": plugin.state_detail,
        "since": _t(plugin.state_since),
        "severity": plugin.severity,
        "last_evidence": {
            "heartbeat_at": _t(plugin.last_heartbeat_at),
            "instance": plugin.last_instance,
            "sequence": plugin.last_sequence,
            "checks": plugin.last_checks,
            "probe": plugin.probes[-1] if plugin.probes else None,
            "violations": plugin.violations,
        },
        "restarts": len(plugin.restarts),
        "restart_requests": plugin.restart_requests,
        "backoff": {"seconds": plugin.backoff_seconds, "next_restart_at": _t(plugin.next_restart_at)},
        "depends_on": [d["name"] for d in plugin.manifest.get("depends_on", [])],
    }


def health_summary(plugins) -> dict[str, Any]:
    rows = [plugin_health(p) for p in plugins]
    counts: dict[str, int] = {state: 0 for state in PluginState.values}
    for row in rows:
        counts[row["state"]] += 1
    return {"healthy": all(r["healthy"] for r in rows), "counts": counts, "plugins": rows}


def dependency_graph(plugins: list[Plugin]) -> list[dict[str, Any]]:
    """The plugins in dependency order with their dependencies' states (the console's table)."""
    by_name = {p.name: p for p in plugins}
    graph = {p.name: [d["name"] for d in p.manifest.get("depends_on", [])] for p in plugins}
    return [
        {
            "plugin": by_name[name],
            "depends_on": [
                {"name": dep, "state": by_name[dep].state if dep in by_name else "unregistered"}
                for dep in graph[name]
            ],
            "dependents": sorted(n for n, deps in graph.items() if name in deps),
        }
        for name in topological_order(graph)
    ]


def plugin_timeline(plugin: Plugin, *, limit: int = 50) -> list[LedgerEvent]:
    return list(LedgerEvent.objects.filter(subject=f"plugin/{plugin.name}").order_by("-seq")[:limit])


def reviews_open(*, principal: Principal) -> QuerySet[ReviewItem]:
    plugins = plugins_visible(principal=principal)
    return (
        ReviewItem.objects.filter(status=ReviewStatus.OPEN, plugin__in=plugins.values("pk"))
        .select_related("plugin")
        .order_by("opened_at", "id")
    )


def reason_description(code: str) -> str:
    entry = CATALOGUE.get(code)
    return entry.description if entry else ""


def plugin_versions_present() -> dict[str, str]:
    """{name: version} of the plugins not quarantined (what the skills app's compatibility check asks)."""
    return dict(Plugin.objects.exclude(state=PluginState.QUARANTINED).values_list("name", "version"))


def readiness() -> dict[str, Any]:
    """What /readyz shows: every plugin's state, ok only when every registered plugin is healthy."""
    plugins = list(Plugin.objects.select_related("tenant").order_by("name"))
    return {
        "ok": all(p.state == PluginState.HEALTHY for p in plugins),
        "plugins": {p.name: {"state": p.state, "reason_codes": list(p.state_codes)} for p in plugins},
    }
