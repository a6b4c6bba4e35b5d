"""Preflight: recorded traffic replayed under a candidate profile and its environment's modes; `ready` only
with an acceptable rejection ratio, a clean validation and a rollback toggle that was exercised; and the
prod strict-profile activation that needs one (GOVERNANCE_PREFLIGHT_REQUIRED)."""

from __future__ import annotations

import copy
import json

import pytest
from django.core.management import call_command

from controlplane.celery import app as celery_app
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from controlplane.policy import services as policy
from controlplane.policy import shipped
from controlplane.policy.models import PolicyProfile
from controlplane.runtime import services as runtime
from governance import services
from governance.preflight import preflight_run
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db

PREFLIGHT = "controlplane.governance.preflight.completed"
DRAFT = {"goal": "echo", "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "hi"}}]}


@pytest.fixture(autouse=True)
def _eager():
    celery_app.conf.task_always_eager = True
    policy.profile_bootstrap(environment="dev")
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def tenant():
    return TenantFactory(slug="acme")


@pytest.fixture
def traffic(tenant, django_capture_on_commit_callbacks):
    agent = PrincipalFactory(tenant=tenant, name="bot", agent=True, capabilities=["intents.submit"])
    with django_capture_on_commit_callbacks(execute=True):
        runtime.intent_submit(principal=agent, draft=DRAFT, idempotency_key="k-1", traceparent=None)
    return agent


@pytest.fixture
def admin():
    return PrincipalFactory(
        human=True,
        capabilities=["platform.governance.manage", "platform.policy.manage", "governance.preflight"],
    )


def _exercise_rollback(admin) -> None:
    services.enforcement_set(mode="warn", actor=admin, reason="drill")
    services.enforcement_set(mode="enforce", actor=admin, reason="drill over")


def _denying_candidate() -> PolicyProfile:
    content = copy.deepcopy(shipped.STRICT_CONTENT)
    content["deny"] = [
        {"id": "no-echo", "when": {"action": "noop.echo"}, "reason": "POLICY_DENY_DANGEROUS_ACTION"}
    ]
    return policy.profile_create(
        name="candidate-deny", environment="prod", content=content, actor="system"
    ).profile


def test_ready_when_nothing_is_refused_validation_is_clean_and_the_rollback_was_drilled(traffic, admin):
    _exercise_rollback(admin)
    report = preflight_run(name=shipped.STRICT, version=None, environment="prod", since="7d", actor=admin)
    assert report["ready"] is True and report["reasons"] == []
    assert report["sources"]["steps"] == 1 and report["rejections"] == 0 and report["rejection_ratio_bp"] == 0
    assert report["validation_ok"] is True and report["rollback_exercised"] is True
    event = LedgerEvent.objects.get(type=PREFLIGHT)
    assert event.fidelity == "simulated" and event.data["ready"] is True and event.actor == admin.ref


def test_not_ready_without_a_drilled_rollback(traffic, admin):
    report = preflight_run(name=shipped.STRICT, version=None, environment="prod", since="7d", actor=admin)
    assert report["ready"] is False and report["rollback_exercised"] is False
    assert report["reasons"] == ["the rollback toggle has not been exercised (warn, then back)"]


def test_the_rejection_ratio_by_code_and_tenant_decides_readiness(traffic, admin):
    _exercise_rollback(admin)
    candidate = _denying_candidate()
    report = preflight_run(name=candidate.name, version=None, environment="prod", since="7d", actor=admin)
    assert report["rejections"] == 1 and report["rejection_ratio_bp"] == 10000
    assert report["by_code"] == {"POLICY_DENY_DANGEROUS_ACTION": 1} and report["by_tenant"] == {"acme": 1}
    assert report["ready"] is False and "rejection ratio 10000 bp" in report["reasons"][0]


def test_ingest_deliveries_are_replayed_under_the_environments_signing_mode(tenant, admin):
    ledger_append(
        type="com.example.alert.fired",
        subject="alert/1",
        data={},
        tenant="acme",
        fidelity="degraded",
        reason_codes=["SIGNATURE_MISSING"],
        provenance={"producer": "acme/mon", "verdict": "unsigned"},
    )
    ledger_append(
        type="com.example.alert.fired",
        subject="alert/2",
        data={},
        tenant="acme",
        provenance={"producer": "acme/mon", "verdict": "verified"},
    )
    prod = preflight_run(name=shipped.STRICT, version=None, environment="prod", since="1d", actor=admin)
    dev = preflight_run(name=shipped.DEV, version=None, environment="dev", since="1d", actor=admin)
    assert prod["sources"]["ingest"] == 2 and prod["by_code"] == {"SIGNATURE_MISSING": 1}
    assert prod["rejection_ratio_bp"] == 5000
    assert dev["rejections"] == 0  # dev allows unsigned deliveries


def test_a_bad_window_is_refused_and_nothing_is_ledgered(admin):
    with pytest.raises(ControlPlaneError) as refused:
        preflight_run(name=shipped.STRICT, version=None, environment="prod", since="seven", actor=admin)
    assert refused.value.code == "VALIDATION_FAILED"
    assert not LedgerEvent.objects.filter(type=PREFLIGHT).exists()


# --- the strict profile in prod needs a recent ready preflight ---------------------------------------------


def _strict_v2() -> PolicyProfile:
    content = {**copy.deepcopy(shipped.STRICT_CONTENT), "description": "strict, second edition"}
    return policy.profile_create(
        name=shipped.STRICT, environment="prod", content=content, actor="system"
    ).profile


def test_moving_prod_to_the_strict_profile_without_a_preflight_is_refused_and_changes_nothing(admin):
    first = policy.profile_bootstrap(environment="prod")  # a first activation (nothing active) passes
    candidate = _strict_v2()
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as refused:
        policy.profile_activate(profile=candidate, actor=admin, reason="tighten prod")
    assert refused.value.code == "GOVERNANCE_PREFLIGHT_REQUIRED"
    assert LedgerEvent.objects.count() == before
    first.refresh_from_db()
    candidate.refresh_from_db()
    assert first.status == "active" and candidate.status == "draft"


def test_a_ready_preflight_of_that_content_lets_the_activation_through(admin):
    policy.profile_bootstrap(environment="prod")
    candidate = _strict_v2()
    _exercise_rollback(admin)
    report = preflight_run(
        name=candidate.name, version=candidate.version, environment="prod", since="7d", actor=admin
    )
    assert report["ready"] is True
    activated = policy.profile_activate(profile=candidate, actor=admin, reason="tighten prod")
    assert activated.status == "active"


def test_a_preflight_that_was_not_ready_does_not_count(admin):
    policy.profile_bootstrap(environment="prod")
    candidate = _strict_v2()
    preflight_run(name=candidate.name, version=candidate.version, environment="prod", since="7d", actor=admin)
    with pytest.raises(ControlPlaneError) as refused:
        policy.profile_activate(profile=candidate, actor=admin, reason="tighten prod")
    assert refused.value.code == "GOVERNANCE_PREFLIGHT_REQUIRED"


# --- surfaces ---------------------------------------------------------------------------------------------


def test_the_api_runs_a_preflight_and_says_it_is_simulated(client, traffic, admin):
    response = client.post(
        "/api/v1/governance/preflight/",
        {"profile": shipped.STRICT, "since": "7d"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token_for(admin)}"},
    )
    body = response.json()
    assert response.status_code == 201 and body["ready"] is False and body["sources"]["steps"] == 1
    assert body["meta"]["fidelity"] == "simulated" and body["meta"]["reason_codes"] == ["TELEMETRY_SIMULATED"]


def test_a_tenant_principal_sees_only_its_own_tenant_in_a_preflight(client, traffic, admin):
    _exercise_rollback(admin)
    candidate = _denying_candidate()
    other = PrincipalFactory(tenant=TenantFactory(slug="globex"), capabilities=["governance.preflight"])
    response = client.post(
        "/api/v1/governance/preflight/",
        {"profile": candidate.name},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token_for(other)}"},
    )
    assert response.status_code == 201 and response.json()["by_tenant"] == {}


def test_the_command_prints_the_report_and_exits_1_when_not_ready(traffic, admin, monkeypatch, capsys):
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(admin))
    with pytest.raises(SystemExit) as exited:
        call_command("governance", "preflight", "--profile", shipped.STRICT, "--since", "7d")
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "NOT READY" in out and "rollback toggle exercised: no" in out
    _exercise_rollback(admin)
    call_command("governance", "preflight", "--profile", shipped.STRICT, "--json")
    assert json.loads(capsys.readouterr().out)["ready"] is True
