"""What the plugins services share: the actor's ledger name, the scope checks, the ledger call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from controlplane.identity.models import Principal, Tenant
from controlplane.identity.scope import platform_authorize
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from plugins.models import Plugin

SOURCE = "/controlplane/plugins"
PLATFORM_PLUGINS = "platform.plugins.manage"


def actor_ref(actor: Principal | str) -> str:
    return actor.ref if isinstance(actor, Principal) else str(actor)


def reason_required(reason: str) -> str:
    if not reason or not reason.strip():
        raise ControlPlaneError("PLUGIN_REASON_REQUIRED", "give a reason")
    return reason.strip()


def authorize(*, actor: Principal | str, tenant: Tenant | None, detail: str) -> None:
    """A tenant's plugins are its own principals' to change; a shared one needs the platform grant.
    A string actor is the installation itself (the shell, a granted approval)."""
    if tenant is None:
        platform_authorize(actor=actor, capability=PLATFORM_PLUGINS, detail=detail)
    elif isinstance(actor, Principal) and actor.tenant_id != tenant.pk:
        raise ControlPlaneError("PLUGIN_NOT_FOUND", "no such plugin in your tenant")


def plugin_lock(*, name: str, actor: Principal | str | None = None) -> Plugin:
    """The plugin, locked, if the actor may see it (PLUGIN_NOT_FOUND otherwise)."""
    plugin = Plugin.objects.select_for_update(of=("self",)).select_related("tenant").filter(name=name).first()
    if plugin is None or (isinstance(actor, Principal) and plugin.tenant_id not in (None, actor.tenant_id)):
        raise ControlPlaneError("PLUGIN_NOT_FOUND", f"no plugin {name!r} in reach")
    return plugin


def append(plugin: Plugin, type_: str, data: dict[str, Any], *, actor: str, at: datetime, codes=()) -> Any:
    return ledger_append(
        type=f"controlplane.plugin.{type_}",
        subject=f"plugin/{plugin.name}",
        data={"plugin": plugin.name, **data},
        tenant=plugin.scope,
        actor=actor,
        time=at,
        source=SOURCE,
        reason_codes=list(codes),
    )
