"""The policy API: capabilities, profiles, activation and explain, through real HTTP requests."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services, shipped
from controlplane.policy.models import PolicyProfile
from tests.identity.factories import PrincipalFactory, token_for
from tests.policy.factories import PolicyProfileFactory, content

pytestmark = pytest.mark.django_db

PROFILES = "/api/v1/policy/profiles/"
EXPLAIN = "/api/v1/policy/explain/"


def _auth(principal) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token_for(principal)}"}


@pytest.fixture
def reader():
    return PrincipalFactory(capabilities=["policy.read"])


@pytest.fixture
def manager():
    return PrincipalFactory(human=True, capabilities=["policy.read", "platform.policy.manage"])


def test_listing_needs_policy_read(client):
    response = client.get(PROFILES, **_auth(PrincipalFactory(capabilities=["ledger.read"])))
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")


def test_list_and_filter_profiles(client, reader, django_assert_max_num_queries):
    PolicyProfileFactory(name="payments", environment="stage")
    auth = _auth(reader)
    with django_assert_max_num_queries(4):  # token (+capabilities), its last_used_at, count, page
        response = client.get(PROFILES, **auth)
    assert response.status_code == 200
    names = [(p["name"], p["version"], p["environment"], p["status"]) for p in response.json()["results"]]
    assert names == [
        ("control-plane-dev-v1", 1, "dev", "draft"),
        ("control-plane-strict-v1", 1, "prod", "draft"),
        ("payments", 1, "stage", "draft"),
    ]
    filtered = client.get(PROFILES, {"environment": "prod"}, **auth).json()["results"]
    assert [p["name"] for p in filtered] == ["control-plane-strict-v1"]


def test_retrieve_a_profile(client, reader):
    strict = PolicyProfile.objects.get(name=shipped.STRICT)
    body = client.get(f"{PROFILES}{strict.pk}/", **_auth(reader)).json()
    assert (body["name"], body["content"], body["content_hash"]) == (
        shipped.STRICT,
        shipped.STRICT_CONTENT,
        strict.content_hash,
    )


def test_create_a_version_then_the_same_content_again(client, manager):
    payload = {"name": "payments", "environment": "stage", "content": content()}
    auth = _auth(manager)
    created = client.post(PROFILES, payload, content_type="application/json", **auth)
    assert created.status_code == 201
    assert (created.json()["version"], created.json()["status"], created.json()["created_by"]) == (
        1,
        "draft",
        manager.ref,
    )
    event = LedgerEvent.objects.filter(type="controlplane.policy.profile.created").get()
    assert (event.actor, event.request_id) == (manager.ref, created["X-Request-ID"])
    assert "reason" not in event.data  # none given
    again = client.post(PROFILES, payload, content_type="application/json", **auth)
    assert (again.status_code, again.json()["id"]) == (200, created.json()["id"])
    assert LedgerEvent.objects.filter(type="controlplane.policy.profile.created").count() == 1


def test_a_reason_given_with_a_new_version_is_recorded(client, manager):
    payload = {"name": "payments", "environment": "stage", "content": content(), "reason": "OPS-12 stage"}
    created = client.post(PROFILES, payload, content_type="application/json", **_auth(manager))
    assert created.status_code == 201
    event = LedgerEvent.objects.filter(type="controlplane.policy.profile.created").get()
    assert event.data["reason"] == "OPS-12 stage"


def test_an_autonomous_high_tier_is_refused_with_the_path_and_nothing_is_written(client, manager):
    auth = _auth(manager)
    events = LedgerEvent.objects.count()
    bad = content(tiers={"high": {"mode": "autonomous"}})
    response = client.post(
        PROFILES,
        {"name": "payments", "environment": "prod", "content": bad},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["path"]) == ("POLICY_PROFILE_INVALID", "tiers.high.mode")
    assert not PolicyProfile.objects.filter(name="payments").exists()
    assert LedgerEvent.objects.count() == events


def test_creating_needs_platform_policy_manage(client, reader):
    auth = _auth(reader)
    events = LedgerEvent.objects.count()
    response = client.post(
        PROFILES,
        {"name": "payments", "environment": "prod", "content": content()},
        content_type="application/json",
        **auth,
    )
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")
    assert not PolicyProfile.objects.filter(name="payments").exists()
    assert LedgerEvent.objects.count() == events


def test_activate_through_the_api(client, manager):
    strict = PolicyProfile.objects.get(name=shipped.STRICT)
    response = client.post(
        f"{PROFILES}{strict.pk}/activate/",
        {"reason": "go live", "expected_hash": strict.content_hash},
        content_type="application/json",
        **_auth(manager),
    )
    assert (response.status_code, response.json()["status"]) == (200, "active")
    event = LedgerEvent.objects.get(type="controlplane.policy.profile.activated")
    assert (event.actor, event.data["reason"], event.data["content_hash"]) == (
        manager.ref,
        "go live",
        strict.content_hash,
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "VALIDATION_FAILED"),
        ({"reason": "go", "expected_hash": "0" * 64}, 409, "POLICY_PROFILE_HASH_MISMATCH"),
    ],
)
def test_refused_activation_through_the_api_writes_nothing(client, manager, body, status, code):
    strict = PolicyProfile.objects.get(name=shipped.STRICT)
    auth = _auth(manager)
    events = LedgerEvent.objects.count()
    response = client.post(f"{PROFILES}{strict.pk}/activate/", body, content_type="application/json", **auth)
    assert (response.status_code, response.json()["code"]) == (status, code)
    strict.refresh_from_db()
    assert strict.status == "draft"
    assert LedgerEvent.objects.count() == events


def test_activating_needs_platform_policy_manage(client, reader):
    strict = PolicyProfile.objects.get(name=shipped.STRICT)
    response = client.post(
        f"{PROFILES}{strict.pk}/activate/", {"reason": "x"}, content_type="application/json", **_auth(reader)
    )
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")


def test_explain_a_hypothetical_step_with_its_rule_trail(client, reader):
    services.profile_bootstrap(environment="prod")
    response = client.post(
        EXPLAIN,
        {
            "action": "http.webhook",
            "tier": "low",
            "inputs": {"target": {"environment": "prod"}},
            "principal_kind": "human",
            "environment": "prod",
        },
        content_type="application/json",
        **_auth(reader),
    )
    assert response.status_code == 200
    body = response.json()
    meta = body.pop("meta")  # a hypothetical step: the answer says it is simulated (docs/telemetry.md)
    assert meta["fidelity"] == "simulated" and meta["reason_codes"] == ["TELEMETRY_SIMULATED"]
    strict = PolicyProfile.objects.get(name=shipped.STRICT)
    assert body == {
        "verdict": "require_approval",
        "enforced": True,
        "effective_verdict": "require_approval",
        "base_tier": "low",
        "tier": "high",
        "quorum": 1,
        "approval_timeout_seconds": 1800,
        "escalation": [{"after_seconds": 600, "level": 1}, {"after_seconds": 1200, "level": 2}],
        "reason_codes": ["POLICY_TIER_RAISED_PROD_TARGET", "POLICY_REQUIRES_APPROVAL"],
        "trail": [
            {"rule": "prod-target", "kind": "raise", "matched": True, "effect": "raise_to:high"},
            {"rule": "prod-environment", "kind": "raise", "matched": False, "effect": "none"},
            {"rule": "agent-medium", "kind": "raise", "matched": False, "effect": "none"},
            {"rule": "agent-high", "kind": "raise", "matched": False, "effect": "none"},
            {"rule": "danger-actions", "kind": "deny", "matched": False, "effect": "none"},
            {"rule": "tiers.high", "kind": "tier", "matched": True, "effect": "assist"},
        ],
        "profile": {
            "name": shipped.STRICT,
            "version": 1,
            "environment": "prod",
            "content_hash": strict.content_hash,
        },
        "decision_hash": body["decision_hash"],
    }
    assert len(body["decision_hash"]) == 64


def test_explain_defaults_to_the_callers_kind_and_records_nothing(client):
    services.profile_bootstrap(environment="prod")
    agent = PrincipalFactory(agent=True, capabilities=["policy.read"])
    auth = _auth(agent)
    events = LedgerEvent.objects.count()
    body = client.post(
        EXPLAIN,
        {"action": "db.migrate", "tier": "high", "environment": "prod"},
        content_type="application/json",
        **auth,
    ).json()
    assert (body["tier"], body["quorum"], body["reason_codes"]) == (
        "critical",
        2,
        [
            "POLICY_TIER_RAISED_AGENT_PRINCIPAL",
            "POLICY_REQUIRES_APPROVAL",
        ],
    )
    assert LedgerEvent.objects.count() == events


def test_explain_without_an_active_profile_is_a_fail_closed_deny(client, reader):
    body = client.post(
        EXPLAIN,
        {"action": "noop.echo", "tier": "low", "environment": "stage"},
        content_type="application/json",
        **_auth(reader),
    ).json()
    assert (body["verdict"], body["enforced"], body["reason_codes"], body["profile"]) == (
        "deny",
        True,
        ["POLICY_MISSING"],
        None,
    )


def test_explain_under_a_draft_profile_in_dev_shows_the_warning(client, reader):
    dev = PolicyProfile.objects.get(name=shipped.DEV)
    body = client.post(
        EXPLAIN,
        {"action": "danger.wipe", "tier": "low", "environment": "dev", "profile": dev.pk},
        content_type="application/json",
        **_auth(reader),
    ).json()
    assert (body["verdict"], body["enforced"], body["effective_verdict"], body["reason_codes"]) == (
        "deny",
        False,
        "allow",
        ["POLICY_DENY_DANGEROUS_ACTION", "POLICY_DEV_WARN_ONLY"],
    )


@pytest.mark.parametrize(
    "body",
    [{"action": "x"}, {"action": "x", "tier": "extreme"}, {"action": "x", "tier": "low", "profile": 999999}],
)
def test_explain_validates_its_input(client, reader, body):
    response = client.post(EXPLAIN, body, content_type="application/json", **_auth(reader))
    assert (response.status_code, response.json()["code"]) == (400, "VALIDATION_FAILED")


def test_the_schema_describes_the_policy_api(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    schema = yaml.safe_load((tmp_path / "schema.yaml").read_text())
    assert {
        "/api/v1/policy/profiles/",
        "/api/v1/policy/profiles/{id}/",
        "/api/v1/policy/profiles/{id}/activate/",
        "/api/v1/policy/explain/",
    } <= set(schema["paths"])
    assert schema["components"]["schemas"]["PolicyVerdictEnum"]["enum"] == [
        "allow",
        "require_approval",
        "deny",
    ]


def test_a_tenant_principal_cannot_write_installation_wide_policy_through_the_service():
    """Before the platform scope, `policy.manage` was granted per tenant but profiles are global: any
    tenant's manager could activate the installation's policy. The service now refuses it, whatever the
    surface (API, console, CLI)."""
    tenant_admin = PrincipalFactory(human=True, capabilities=["policy.read"])
    strict = PolicyProfile.objects.get(name=shipped.STRICT)
    events = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as refused:
        services.profile_activate(profile=strict, actor=tenant_admin, reason="mine now")
    assert refused.value.code == "PLATFORM_SCOPE_REQUIRED"
    with pytest.raises(ControlPlaneError) as refused:
        services.profile_create(name="mine", environment="prod", content=content(), actor=tenant_admin)
    assert refused.value.code == "PLATFORM_SCOPE_REQUIRED"
    strict.refresh_from_db()
    assert strict.status == "draft" and not PolicyProfile.objects.filter(name="mine").exists()
    assert LedgerEvent.objects.count() == events


def test_the_old_per_tenant_policy_manage_is_no_longer_a_capability():
    from controlplane.identity.capabilities import is_known

    assert not is_known("policy.manage") and is_known("platform.policy.manage")


def test_a_tenant_principal_reads_the_active_policy(client, reader):
    services.profile_bootstrap(environment="prod")
    response = client.get(f"{PROFILES}?status=active", **_auth(reader))
    assert response.status_code == 200
    assert [p["name"] for p in response.json()["results"]] == [shipped.STRICT]
