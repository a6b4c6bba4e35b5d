"""Registering plugins: validated, cycle-free, scoped; refusals carry their code and write nothing."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.kernel.contracts import REGISTRY
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from plugins import services
from plugins.models import Plugin, PluginProvision
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.plugins.support import manifest, register

pytestmark = pytest.mark.django_db


def plugin_events() -> list[LedgerEvent]:
    return list(LedgerEvent.objects.filter(type__startswith="controlplane.plugin.").order_by("seq"))


def test_a_registered_plugin_starts_unknown_and_is_ledgered():
    runner = register("runner-eu", provides={"runners": ["runner-eu"]})
    plugin = runner.refresh()
    assert (plugin.state, plugin.state_codes, plugin.tenant.slug) == (
        "unknown",
        ["PLUGIN_NO_EVIDENCE"],
        "acme",
    )
    assert list(plugin.provisions.values_list("kind", "name")) == [("runner", "runner-eu")]
    assert plugin.tuning["restart_intensity"] == 3 and plugin.tuning["backoff_initial_seconds"] == 10
    [event] = plugin_events()
    assert (event.type, event.subject, event.tenant) == (
        "controlplane.plugin.registered",
        "plugin/runner-eu",
        "acme",
    )
    assert event.data["provides"] == ["runner:runner-eu"] and event.data["state"] == "unknown"
    assert REGISTRY.for_ledger_type(event.type).errors(event.data) == []


def test_supervision_is_tunable_per_plugin():
    plugin = register("slow", supervision={"restart_intensity": 5, "backoff_max_seconds": 60}).refresh()
    assert plugin.tuning["restart_intensity"] == 5 and plugin.tuning["backoff_max_seconds"] == 60
    assert plugin.tuning["restart_period_seconds"] == 300


def test_a_dependency_cycle_is_refused_and_nothing_is_written():
    register("a", depends_on=[{"name": "b"}])
    register("b", depends_on=[{"name": "c", "version": ">=1,<2"}])
    before = LedgerEvent.objects.count()
    tenant = TenantFactory(slug="acme")
    principal = PrincipalFactory(tenant=tenant, name="c-svc")
    key = Ed25519PrivateKey.generate()
    with pytest.raises(ControlPlaneError) as refused:
        services.plugin_register(
            manifest=manifest("c", key=key, principal=principal.name, depends_on=[{"name": "a"}]),
            actor="cli",
            tenant=tenant,
        )
    assert refused.value.code == "PLUGIN_DEPENDENCY_CYCLE"
    assert "c -> a -> b -> c" in refused.value.detail
    assert not Plugin.objects.filter(name="c").exists() and LedgerEvent.objects.count() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "robot"}, "kind"),
        ({"public_key": "not-a-key"}, "key"),
        ({"name": "health"}, "reserved"),
        ({"depends_on": [{"name": "x", "version": "not a range"}]}, "range"),
        ({"heartbeat_interval_seconds": 0}, "heartbeat_interval_seconds"),
    ],
)
def test_an_invalid_manifest_is_refused_with_its_code(change, field):
    tenant = TenantFactory(slug="acme")
    principal = PrincipalFactory(tenant=tenant, name="svc")
    body = {**manifest("bad", key=Ed25519PrivateKey.generate(), principal=principal.name), **change}
    with pytest.raises(ControlPlaneError) as refused:
        services.plugin_register(manifest=body, actor="cli", tenant=tenant)
    assert refused.value.code == "PLUGIN_MANIFEST_INVALID"
    assert (
        Plugin.objects.count() == 0
        and LedgerEvent.objects.filter(type__startswith="controlplane.plugin.").count() == 0
    )


def test_a_name_or_a_runner_of_another_tenant_is_refused():
    register("ops", provides={"runners": ["ops-runner"]})
    other = TenantFactory(slug="globex")
    principal = PrincipalFactory(tenant=other, name="svc")
    key = Ed25519PrivateKey.generate()
    with pytest.raises(ControlPlaneError) as refused:
        services.plugin_register(
            manifest=manifest("ops", key=key, principal="svc"), actor="cli", tenant=other
        )
    assert refused.value.code == "PLUGIN_EXISTS"
    with pytest.raises(ControlPlaneError) as refused:
        services.plugin_register(
            manifest=manifest(
                "ops2", key=key, principal=principal.name, provides={"runners": ["ops-runner"]}
            ),
            actor="cli",
            tenant=other,
        )
    assert refused.value.code == "PLUGIN_EXISTS"
    assert PluginProvision.objects.count() == 1


def test_a_tenant_principal_registers_only_in_its_tenant_and_a_shared_plugin_needs_the_platform():
    acme, globex = TenantFactory(slug="acme"), TenantFactory(slug="globex")
    alice = PrincipalFactory(tenant=acme, name="alice", human=True, capabilities=["plugins.manage"])
    PrincipalFactory(tenant=acme, name="svc")
    key = Ed25519PrivateKey.generate()
    with pytest.raises(ControlPlaneError) as refused:
        services.plugin_register(manifest=manifest("x", key=key, principal="svc"), actor=alice, tenant=globex)
    assert refused.value.code == "PLUGIN_NOT_FOUND"
    with pytest.raises(ControlPlaneError) as refused:
        services.plugin_register(manifest=manifest("x", key=key, principal="svc"), actor=alice, tenant=None)
    assert refused.value.code == "PLATFORM_SCOPE_REQUIRED"
    assert Plugin.objects.count() == 0
    root = PrincipalFactory(tenant=acme, name="root", human=True, capabilities=["platform.plugins.manage"])
    shared = services.plugin_register(
        manifest=manifest("x", key=key, principal="svc"), actor=root, tenant=None
    )
    assert shared.tenant is None and shared.scope == ""
