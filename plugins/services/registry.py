"""Registering a plugin's manifest: validated, cycle-checked, ledgered; nothing written when refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.identity.models import Principal, PrincipalKind, Tenant
from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.signatures import ed25519_public_key_normalise
from plugins import manifest as manifests
from plugins.models import Plugin, PluginProvision, PluginState, ProvisionKind
from plugins.services.common import actor_ref, append, authorize


def _hash(manifest: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(canonical_bytes(manifest)).hexdigest()


def _principal(*, name: str, tenant: Tenant) -> Principal:
    principal = Principal.objects.select_related("tenant").filter(tenant=tenant, name=name).first()
    if principal is None or principal.kind != PrincipalKind.SERVICE:
        raise ControlPlaneError(
            "PLUGIN_MANIFEST_INVALID", f"principal: no service principal {name!r} in tenant {tenant.slug}"
        )
    return principal


def _provisions(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    provides = manifest.get("provides", {})
    return sorted(
        {(ProvisionKind.RUNNER, n) for n in provides.get("runners", [])}
        | {(ProvisionKind.EXECUTOR, n) for n in provides.get("executors", [])}
        | {(ProvisionKind.ACTION, n) for n in provides.get("actions", [])}
    )


@transaction.atomic
def plugin_register(
    *,
    manifest: Any,
    actor: Principal | str,
    tenant: Tenant | None,
    at: datetime | None = None,
) -> Plugin:
    """Register (or re-register, e.g. a new version of) a plugin in `tenant`, or shared when None.

    Refuses with PLUGIN_MANIFEST_INVALID, PLUGIN_DEPENDENCY_CYCLE, PLUGIN_EXISTS (the name or something it
    provides belongs to another plugin or scope), PLATFORM_SCOPE_REQUIRED (a shared plugin without the
    platform grant) -- writing nothing. A new registration starts `unknown`; a re-registration keeps its
    state (a quarantined plugin stays quarantined) and its evidence.
    """
    authorize(actor=actor, tenant=tenant, detail="shared plugins are registered by the platform")
    manifest = manifests.manifest_validate(manifest)
    at = at or timezone.now()
    name = manifest["name"]
    owner_tenant = tenant or (actor.tenant if isinstance(actor, Principal) else None)
    if owner_tenant is None:
        raise ControlPlaneError(
            "PLUGIN_MANIFEST_INVALID", "principal: a shared plugin's principal needs a tenant"
        )
    principal = _principal(name=manifest["principal"], tenant=owner_tenant)
    existing = Plugin.objects.select_for_update().filter(name=name).first()
    if existing is not None and existing.tenant_id != (tenant.pk if tenant else None):
        raise ControlPlaneError("PLUGIN_EXISTS", f"plugin {name!r} is registered in another scope")
    # The whole graph, with this manifest in place of its previous version: refuse a cycle.
    graph = {
        p: [d["name"] for d in deps or []]
        for p, deps in Plugin.objects.exclude(name=name).values_list("name", "manifest__depends_on")
    }
    graph[name] = [d["name"] for d in manifest.get("depends_on", [])]
    cycle = manifests.find_cycle(graph, start=name)
    if cycle:
        raise ControlPlaneError("PLUGIN_DEPENDENCY_CYCLE", "depends_on closes a cycle: " + " -> ".join(cycle))
    provisions = _provisions(manifest)
    taken = (
        PluginProvision.objects.exclude(plugin__name=name)
        .filter(kind__in=[k for k, _ in provisions], name__in=[n for _, n in provisions])
        .select_related("plugin")
    )
    for provision in taken:
        if (provision.kind, provision.name) in provisions:
            raise ControlPlaneError(
                "PLUGIN_EXISTS",
                f"{provision.kind} {provision.name} is provided by plugin {provision.plugin.name}",
            )
    fields = {
        "version": manifest["version"],
        "kind": manifest["kind"],
        "manifest": manifest,
        "manifest_hash": _hash(manifest),
        "principal": principal,
        "public_key": ed25519_public_key_normalise(manifest["public_key"]),
        "heartbeat_interval_seconds": manifest["heartbeat_interval_seconds"],
        "health_url": manifest.get("health_url", ""),
        "control_url": manifest.get("control_url", ""),
        "tuning": manifests.tuning_of(manifest),
    }
    if existing is None:
        plugin = Plugin.objects.create(
            name=name,
            tenant=tenant,
            registered_by=actor_ref(actor),
            registered_at=at,
            state=PluginState.UNKNOWN,
            state_codes=["PLUGIN_NO_EVIDENCE"],
            state_detail="registered; no evidence yet",
            state_since=at,
            evidence_since=at,
            **fields,
        )
    else:
        plugin = existing
        for key, value in fields.items():
            setattr(plugin, key, value)
        plugin.save(update_fields=list(fields))
        plugin.provisions.all().delete()
    PluginProvision.objects.bulk_create(
        [PluginProvision(plugin=plugin, kind=kind, name=value) for kind, value in provisions]
    )
    plugin = Plugin.objects.select_related("tenant").get(pk=plugin.pk)
    append(
        plugin,
        "registered",
        {
            "version": plugin.version,
            "kind": plugin.kind,
            "manifest_sha256": plugin.manifest_hash,
            "provides": [f"{kind}:{value}" for kind, value in provisions],
            "depends_on": manifest.get("depends_on", []),
            "principal": principal.ref,
            "public_key": plugin.public_key,
            "shared": tenant is None,
            "state": plugin.state,
        },
        actor=actor_ref(actor),
        at=at,
    )
    return plugin
