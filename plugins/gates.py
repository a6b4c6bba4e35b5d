"""The plugins dispatch gate: a step whose runner or executor a plugin provides waits while it is unhealthy.

Registered from `PluginsConfig.ready()` with `controlplane.runtime.gates.register_dispatch_gate`. The check
is one indexed read inside the dispatching transaction. Fail closed: `unknown` (no evidence yet) is not
healthy, so a step for a just-registered or just-released plugin waits for its first good evidence. A step
no plugin provides for is not this gate's business (the runtime answers RUNNER_UNKNOWN and the like).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q

from controlplane.runtime.gates import DispatchGate, Hold
from plugins.models import PluginProvision, PluginState, ProvisionKind

if TYPE_CHECKING:
    from controlplane.runtime.models import StepRun

GATE = "plugins"


def plugin_gate_check(run: StepRun) -> Hold | None:
    step = run.step
    wanted = Q(kind=ProvisionKind.EXECUTOR, name=step.executor) | Q(
        kind=ProvisionKind.ACTION, name=step.action
    )
    runner = step.inputs.get("runner") if isinstance(step.inputs, dict) else None
    if isinstance(runner, str) and runner:
        wanted |= Q(kind=ProvisionKind.RUNNER, name=runner)
    tenant_id = run.execution.tenant_id
    provisions = (
        PluginProvision.objects.filter(wanted)
        .filter(Q(plugin__tenant_id=tenant_id) | Q(plugin__tenant__isnull=True))
        .order_by("plugin__name")
        .values_list("plugin__name", "plugin__state", "plugin__state_codes", "kind", "name")
    )
    for plugin, state, codes, kind, name in provisions:
        if state != PluginState.HEALTHY:
            return Hold(
                code="PLUGIN_UNHEALTHY",
                detail=f"waiting for plugin {plugin} ({state})",
                data={"plugin": plugin, "state": state, "codes": list(codes), "provides": f"{kind}:{name}"},
            )
    return None


def _fail_after() -> timedelta | None:
    seconds = settings.CONTROLPLANE_PLUGIN_HOLD_FAIL_AFTER_SECONDS
    return timedelta(seconds=seconds) if seconds > 0 else None


PLUGINS_GATE = DispatchGate(name=GATE, check=plugin_gate_check, auto_resume=True, fail_after=_fail_after)
