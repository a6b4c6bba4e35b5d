"""`GET /api/v1/governance/` and the CLI's `modes` and `enforcement`: what each principal may see and do."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from controlplane.kernel import governance as kernel
from controlplane.ledger.models import LedgerEvent
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db


def get(client, principal):
    return client.get("/api/v1/governance/", headers={"Authorization": f"Bearer {token_for(principal)}"})


def test_the_overview_shows_the_matrix_the_toggle_and_counts(client, settings):
    settings.CONTROLPLANE_ENFORCEMENT = "warn"
    kernel.gate("envelope", "TELEMETRY_NONCANONICAL", tenant="acme")
    platform = PrincipalFactory(human=True, capabilities=["governance.read", "platform.governance.manage"])
    body = get(client, platform).json()
    assert set(body["matrix"]) == {"dev", "stage", "prod"} and body["enforcement"]["mode"] == "warn"
    assert body["counts"]["by_tenant"] == {"acme": {"refused": 0, "would_refuse": 1}}
    assert body["meta"]["fidelity"] == "live"


def test_a_tenant_principal_sees_only_its_tenants_counts(client, settings):
    settings.CONTROLPLANE_ENFORCEMENT = "warn"
    kernel.gate("envelope", "TELEMETRY_NONCANONICAL", tenant="acme")
    other = PrincipalFactory(tenant=TenantFactory(slug="globex"), capabilities=["governance.read"])
    body = get(client, other).json()
    assert body["counts"]["by_tenant"] == {} and body["counts"]["by_code"] == {}


def test_the_overview_needs_governance_read(client):
    nobody = PrincipalFactory(capabilities=["ledger.read"])
    response = get(client, nobody)
    assert response.status_code == 403 and response.json()["code"] == "CAPABILITY_MISSING"


def test_modes_prints_the_matrix_and_the_toggle(capsys):
    call_command("governance", "modes")
    out = json.loads(capsys.readouterr().out)
    assert out["matrix"]["prod"]["signing"] == "require-valid-signature" and out["enforcement"] == "enforce"


def test_enforcement_from_the_cli_acts_for_the_tokens_person(monkeypatch, capsys):
    admin = PrincipalFactory(human=True, capabilities=["platform.governance.manage"])
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(admin))
    call_command("governance", "enforcement", "warn", "--reason", "drill")
    assert "enforcement toggle: warn" in capsys.readouterr().out
    event = LedgerEvent.objects.get(type="controlplane.governance.enforcement.changed")
    assert event.actor == admin.ref


def test_enforcement_from_the_cli_without_the_grant_is_refused(monkeypatch):
    reader = PrincipalFactory(human=True, capabilities=["governance.read"])
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(reader))
    with pytest.raises(CommandError, match=r"^CAPABILITY_MISSING: "):
        call_command("governance", "enforcement", "warn", "--reason", "drill")
    assert not LedgerEvent.objects.filter(type="controlplane.governance.enforcement.changed").exists()
