"""The rollback toggle and warn mode: one switch turns enforce into warn without a redeploy, ledgered;
warn mode counts what enforce would have refused, per code and tenant."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.test import Client

from controlplane.kernel import governance as kernel
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from governance import selectors, services
from governance.models import EnforcementCount, EnforcementToggle
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

TOGGLED = "controlplane.governance.enforcement.changed"


@pytest.fixture
def admin(db):
    return PrincipalFactory(human=True, capabilities=["platform.governance.manage", "governance.read"])


@pytest.fixture
def enforcing(settings):
    settings.CONTROLPLANE_GOVERNANCE_MODES = {"dev": {"envelope": "enforce"}}
    settings.CONTROLPLANE_ENFORCEMENT = ""


@pytest.mark.django_db
def test_the_toggle_turns_enforce_into_warn_and_is_ledgered(admin, enforcing):
    assert kernel.effective_mode("envelope") == "enforce"
    toggle = services.enforcement_set(mode="warn", actor=admin, reason="rollback: refusals spiking")
    kernel.enforcement_forget()
    assert kernel.enforcement_toggle() == ("warn", "runtime")
    assert kernel.effective_mode("envelope") == "warn"
    event = LedgerEvent.objects.get(type=TOGGLED)
    assert event.data == {
        "mode": "warn",
        "previous": None,
        "env": None,
        "reason": "rollback: refusals spiking",
    }
    assert event.actor == admin.ref and toggle.event_seq == event.seq


@pytest.mark.django_db
def test_clearing_the_toggle_gives_the_decision_back_to_the_environment_variable(admin, enforcing, settings):
    settings.CONTROLPLANE_ENFORCEMENT = "warn"
    assert kernel.enforcement_toggle() == ("warn", "env")
    services.enforcement_set(mode="enforce", actor=admin, reason="warn is over")
    kernel.enforcement_forget()
    assert kernel.enforcement_toggle() == ("enforce", "runtime")
    services.enforcement_set(mode="clear", actor=admin, reason="back to the deployment's value")
    kernel.enforcement_forget()
    assert kernel.enforcement_toggle() == ("warn", "env")
    assert [e.data["mode"] for e in LedgerEvent.objects.filter(type=TOGGLED).order_by("seq")] == [
        "enforce",
        None,
    ]


@pytest.mark.django_db
def test_setting_the_value_it_has_writes_nothing(admin):
    services.enforcement_set(mode="warn", actor=admin, reason="one")
    services.enforcement_set(mode="warn", actor=admin, reason="two")
    assert LedgerEvent.objects.filter(type=TOGGLED).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("capabilities", "mode", "reason", "code"),
    [
        (["governance.read"], "warn", "x", "PLATFORM_SCOPE_REQUIRED"),
        (["platform.governance.manage"], "audit", "x", "GOVERNANCE_ENFORCEMENT_INVALID"),
        (["platform.governance.manage"], "warn", "  ", "GOVERNANCE_REASON_REQUIRED"),
    ],
)
def test_a_refused_toggle_change_names_its_code_and_writes_nothing(capabilities, mode, reason, code):
    actor = PrincipalFactory(human=True, capabilities=capabilities)
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as refused:
        services.enforcement_set(mode=mode, actor=actor, reason=reason)
    assert refused.value.code == code
    assert LedgerEvent.objects.count() == before and not EnforcementToggle.objects.exists()


@pytest.mark.django_db
def test_the_toggle_through_the_api_needs_the_platform_grant(client, admin):
    tenant_admin = PrincipalFactory(human=True, capabilities=["governance.read"])
    refused = client.post(
        "/api/v1/governance/enforcement/",
        {"mode": "warn", "reason": "x"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token_for(tenant_admin)}"},
    )
    assert refused.status_code == 403 and refused.json()["code"] == "PLATFORM_SCOPE_REQUIRED"
    done = client.post(
        "/api/v1/governance/enforcement/",
        {"mode": "warn", "reason": "rollback"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token_for(admin)}"},
    )
    assert done.status_code == 200 and done.json()["mode"] == "warn" and done.json()["source"] == "runtime"


@pytest.mark.django_db
def test_the_gate_refuses_and_counts_in_enforce_and_counts_would_refuse_in_warn(enforcing, settings):
    with pytest.raises(ControlPlaneError) as refused:
        kernel.gate("envelope", "TELEMETRY_NONCANONICAL", tenant="acme")
    assert refused.value.code == "TELEMETRY_NONCANONICAL"
    settings.CONTROLPLANE_ENFORCEMENT = "warn"
    kernel.enforcement_forget()
    assert kernel.gate("envelope", "TELEMETRY_NONCANONICAL", tenant="acme") == "warn"
    assert kernel.gate("envelope", "TELEMETRY_NONCANONICAL", tenant="globex") == "warn"
    rows = {(r.outcome, r.tenant): r.count for r in EnforcementCount.objects.all()}
    assert rows == {("refused", "acme"): 1, ("would_refuse", "acme"): 1, ("would_refuse", "globex"): 1}
    assert selectors.counts()["by_code"] == {"TELEMETRY_NONCANONICAL": {"refused": 1, "would_refuse": 2}}


@pytest.mark.django_db
def test_readyz_shows_the_mode_the_toggle_and_the_profile_hash(client, admin, settings):
    from controlplane.policy import services as policy

    profile = policy.profile_bootstrap(environment="dev")
    settings.CONTROLPLANE_ENFORCEMENT = "warn"
    reader = PrincipalFactory(capabilities=["system.read"])
    body = client.get("/readyz", headers={"Authorization": f"Bearer {token_for(reader)}"}).json()
    governance = body["governance"]
    assert governance["enforcement"] == "warn" and governance["enforcement_source"] == "env"
    assert governance["profile_hash"] == profile.content_hash and governance["modes"]["envelope"] == "warn"


@pytest.mark.django_db
def test_the_startup_line_and_the_attestation_say_the_mode_once_per_process(settings):
    from controlplane.startup import banner
    from governance.services import mode_attest

    settings.CONTROLPLANE_ENFORCEMENT = "warn"
    assert "enforcement=warn(env) ENFORCEMENT ROLLED BACK TO WARN" in banner()
    assert mode_attest(force=True) is True
    assert mode_attest() is False  # once per process
    event = LedgerEvent.objects.get(type="controlplane.governance.mode.attested")
    assert event.data["enforcement"] == "warn" and event.data["environment"] == settings.CONTROLPLANE_ENV
    assert set(event.data["modes"]) == set(kernel.DIMENSIONS)


# --- the flip under load ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_flipping_the_toggle_under_load_stops_refusals_within_the_cache_and_starts_counting(
    settings, monkeypatch
):
    """Agents keep sending a noncanonical field while an operator flips the toggle. The flip is made as
    another process would see it (no in-process cache reset): every request that starts more than the
    cache's lifetime after the flip is accepted, and the would-have-refused count grows from then."""
    from tests.runtime.support import core_skill_installed

    core_skill_installed()
    settings.CONTROLPLANE_GOVERNANCE_MODES = {"dev": {"envelope": "enforce"}}
    settings.CONTROLPLANE_ENFORCEMENT = ""
    tenant = TenantFactory(slug="acme")
    agent = PrincipalFactory(tenant=tenant, name="bot", agent=True, capabilities=["telemetry.report"])
    admin = PrincipalFactory(human=True, capabilities=["platform.governance.manage"])
    bearer = token_for(agent)
    body = {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "gen_ai.request.model": "m-1",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 2,
        "prompt_sha256": "a" * 64,
        "response_sha256": "b" * 64,
        "vendorExtra": 1,  # no translator knows it
    }
    results: list[tuple[float, int, str]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def agent_loop() -> None:
        client = Client()
        try:
            while not stop.is_set():
                started = time.monotonic()
                response = client.post(
                    "/api/v1/telemetry/model-calls/",
                    body,
                    content_type="application/json",
                    headers={"Authorization": f"Bearer {bearer}"},
                )
                with lock:
                    results.append((started, response.status_code, response.json().get("code", "")))
        finally:
            connection.close()

    def refusals() -> int:
        with lock:
            return sum(1 for _, status, _ in results if status == 400)

    threads = [threading.Thread(target=agent_loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while refusals() < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        monkeypatch.setattr(kernel, "enforcement_forget", lambda: None)  # as seen from another process
        services.enforcement_set(mode="warn", actor=admin, reason="rollback under load")
        flipped = time.monotonic()
        while time.monotonic() < flipped + kernel.ENFORCEMENT_CACHE_SECONDS + 1.0:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    before = [r for r in results if r[0] < flipped]
    settled = [r for r in results if r[0] > flipped + kernel.ENFORCEMENT_CACHE_SECONDS]
    assert any(status == 400 and code == "TELEMETRY_NONCANONICAL" for _, status, code in before)
    assert settled and all(status == 201 for _, status, _ in settled), {s for _, s, _ in settled}
    would = EnforcementCount.objects.get(outcome="would_refuse", code="TELEMETRY_NONCANONICAL", tenant="acme")
    assert would.count >= len(settled)
    assert LedgerEvent.objects.filter(type="controlplane.telemetry.model_call.reported").count() == sum(
        1 for _, status, _ in results if status == 201
    )
