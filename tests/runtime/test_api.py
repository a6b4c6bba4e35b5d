"""The action flow through the REST API: intents, executions, approvals, kill switch."""

from __future__ import annotations

import pytest

from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import KillSwitch
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db

DRAFT = {"goal": "echo", "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "hi"}}]}
WEBHOOK_DRAFT = {
    "goal": "restart checkout",
    "steps": [
        {
            "key": "restart",
            "action": "http.webhook",
            "inputs": {"runner": "ops", "operation": "restart", "target": {"environment": "prod"}},
        }
    ],
}


@pytest.fixture(autouse=True)
def _setup():
    celery_app.conf.task_always_eager = True
    policy.profile_bootstrap(environment="dev")
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def tenant():
    return TenantFactory(slug="acme")


@pytest.fixture
def agent_token(tenant):
    return token_for(
        PrincipalFactory(
            tenant=tenant, name="bot", agent=True, capabilities=["intents.submit", "executions.read"]
        )
    )


def post(client, path, body, token, **headers):
    return client.post(
        path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}", **headers
    )


def get(client, path, token):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_submit_runs_and_the_execution_is_readable(client, agent_token, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "/api/v1/intents/", DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "compiled" and len(body["plan"]) == 64
    execution = get(client, f"/api/v1/executions/{body['execution']}/", agent_token).json()
    assert execution["status"] == "completed"
    assert execution["steps"][0]["outcome"]["echo"] == {"message": "hi"}
    again = post(client, "/api/v1/intents/", DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="k1")
    assert again.status_code == 200 and again.json()["id"] == body["id"]


def test_submit_answers_each_steps_state_not_only_compiled(client, agent_token):
    """Before, the answer said only `"status": "compiled"`, even when a step waited for a person or the
    execution had already failed."""
    response = post(client, "/api/v1/intents/", WEBHOOK_DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="s1")
    body = response.json()
    assert (body["status"], body["execution_status"], body["execution_state"]) == (
        "compiled",
        "running",
        "waiting for approval",
    )
    [step] = body["steps"]
    assert (step["key"], step["action"], step["status"], step["state"]) == (
        "restart",
        "http.webhook",
        "waiting_approval",
        "waiting for approval",
    )
    assert step["approval"] == str(ApprovalRequest.objects.get().pk)
    services.killswitch_set(scope="global", engaged=True, reason="drill", actor="cli")
    held = post(client, "/api/v1/intents/", DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="s2").json()
    assert held["execution_state"] == "held by the kill switch"
    assert held["steps"][0]["reason_codes"] == [] and held["steps"][0]["status"] == "held"


def test_submit_answers_a_failed_execution_with_its_codes(client, agent_token, settings):
    settings.CONTROLPLANE_ENV = "stage"  # no stage profile is active: every step is denied
    body = post(client, "/api/v1/intents/", DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="s3").json()
    assert (body["status"], body["execution_status"], body["execution_state"]) == (
        "compiled",
        "failed",
        "failed",
    )
    assert body["steps"][0]["state"] == "blocked" and "POLICY_MISSING" in body["steps"][0]["reason_codes"]


def test_missing_idempotency_key_is_refused_and_writes_nothing(client, agent_token):
    before = LedgerEvent.objects.count()
    response = post(client, "/api/v1/intents/", DRAFT, agent_token)
    assert response.status_code == 400 and response.json()["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    assert LedgerEvent.objects.count() == before


def test_a_bad_draft_is_a_400_naming_the_step_and_recorded(client, agent_token):
    bad = {"goal": "x", "steps": [{"key": "a", "action": "rm.rf", "inputs": {}}]}
    response = post(client, "/api/v1/intents/", bad, agent_token, HTTP_IDEMPOTENCY_KEY="k2")
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["step"]) == ("PLAN_UNKNOWN_ACTION", "a") and body["intent"]
    assert LedgerEvent.objects.filter(
        type="controlplane.plan.rejected", reason_codes=["PLAN_UNKNOWN_ACTION"]
    ).exists()


def test_an_agents_medium_step_goes_to_the_queue_and_a_person_approves_it(client, tenant, agent_token):
    response = post(client, "/api/v1/intents/", WEBHOOK_DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="k3")
    assert response.status_code == 201
    alice = PrincipalFactory(
        tenant=tenant, name="alice", human=True, capabilities=["approvals.read", "approvals.decide"]
    )
    token = token_for(alice)
    queue = get(client, "/api/v1/approvals/?status=pending", token).json()["results"]
    assert len(queue) == 1 and queue[0]["summary"]["action"] == "http.webhook"
    refused = post(
        client,
        f"/api/v1/approvals/{queue[0]['id']}/decide/",
        {"decision": "approve", "reason": "ok", "content_hash": "0" * 64},
        token,
    )
    assert refused.status_code == 409 and refused.json()["code"] == "APPROVAL_CONTENT_CHANGED"
    decided = post(
        client,
        f"/api/v1/approvals/{queue[0]['id']}/decide/",
        {"decision": "approve", "reason": "ok", "content_hash": queue[0]["content_hash"]},
        token,
    )
    assert decided.status_code == 200 and decided.json()["status"] == "approved"


def test_bulk_decide_is_all_or_nothing(client, tenant, agent_token):
    for key in ("b1", "b2"):
        draft = {**WEBHOOK_DRAFT, "goal": f"restart {key}"}
        post(client, "/api/v1/intents/", draft, agent_token, HTTP_IDEMPOTENCY_KEY=key)
    token = token_for(
        PrincipalFactory(
            tenant=tenant, name="bob", human=True, capabilities=["approvals.read", "approvals.decide"]
        )
    )
    pending = list(ApprovalRequest.objects.filter(status="pending"))
    items = [
        {"id": pending[0].pk, "content_hash": pending[0].content_hash},
        {"id": pending[1].pk, "content_hash": "bad"},
    ]
    refused = post(
        client,
        "/api/v1/approvals/bulk-decide/",
        {"decision": "reject", "reason": "batch", "requests": items},
        token,
    )
    assert refused.status_code == 409 and refused.json()["request"] == pending[1].pk
    assert ApprovalRequest.objects.filter(status="pending").count() == 2
    items[1]["content_hash"] = pending[1].content_hash
    done = post(
        client,
        "/api/v1/approvals/bulk-decide/",
        {"decision": "reject", "reason": "batch", "requests": items},
        token,
    )
    assert done.status_code == 200 and {r["status"] for r in done.json()["results"]} == {"rejected"}


def test_the_kill_switch_api(client, tenant, agent_token, django_capture_on_commit_callbacks):
    operator = token_for(
        PrincipalFactory(
            tenant=tenant,
            name="ops",
            human=True,
            capabilities=["killswitch.manage", "platform.killswitch.manage"],
        )
    )
    engaged = post(
        client,
        "/api/v1/killswitch/",
        {"scope": "global", "target": "", "engaged": True, "reason": "incident"},
        operator,
    )
    assert engaged.status_code == 200 and engaged.json()["engaged"] is True
    response = post(client, "/api/v1/intents/", DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="k9")
    execution = get(client, f"/api/v1/executions/{response.json()['execution']}/", agent_token).json()
    assert execution["status"] == "running" and execution["reason_codes"] == []
    assert [(s["status"], s["held_code"]) for s in execution["steps"]] == [("held", "KILL_SWITCH_ENGAGED")]
    [switch] = get(client, "/api/v1/killswitch/", operator).json()["results"]
    assert (switch["scope"], switch["holding"]) == ("global", 1) and "held" not in switch
    assert (
        post(
            client, "/api/v1/killswitch/", {"scope": "global", "engaged": True, "reason": "x"}, agent_token
        ).status_code
        == 403
    )
    with django_capture_on_commit_callbacks(execute=True):
        released = post(
            client,
            "/api/v1/killswitch/",
            {"scope": "global", "target": "", "engaged": False, "reason": "over", "held": "resume"},
            operator,
        )
    assert released.status_code == 200
    assert released.json()["held_result"] == {"resumed": 1, "cancelled": 0, "still_held": 0}
    assert released.json()["holding"] == 0
    execution = get(client, f"/api/v1/executions/{execution['id']}/", agent_token).json()
    assert execution["status"] == "completed"


def test_held_executions_are_listed_and_decided_one_by_one(
    client, tenant, agent_token, django_capture_on_commit_callbacks
):
    olga = token_for(
        PrincipalFactory(tenant=tenant, name="olga", human=True, capabilities=["killswitch.manage"])
    )
    services.killswitch_set(scope="tenant", target="acme", engaged=True, reason="drill", actor="cli")
    first = post(client, "/api/v1/intents/", DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="h1").json()[
        "execution"
    ]
    second = post(client, "/api/v1/intents/", DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="h2").json()[
        "execution"
    ]
    held = get(client, "/api/v1/killswitch/held/", olga).json()["results"]
    assert [(h["execution"], h["steps"], h["engaged"]) for h in held] == [
        (first, ["a"], ["tenant/acme"]),
        (second, ["a"], ["tenant/acme"]),
    ]
    assert held[0]["detail"] == "held by the kill switch (tenant acme: drill)"
    before = LedgerEvent.objects.count()
    refused = post(
        client, "/api/v1/killswitch/held/", {"execution": first, "decision": "resume", "reason": "go"}, olga
    )
    assert (refused.status_code, refused.json()["code"]) == (503, "KILL_SWITCH_ENGAGED")
    assert LedgerEvent.objects.count() == before
    services.killswitch_set(scope="tenant", target="acme", engaged=False, reason="over", actor="cli")
    with django_capture_on_commit_callbacks(execute=True):
        resumed = post(
            client,
            "/api/v1/killswitch/held/",
            {"execution": first, "decision": "resume", "reason": "go"},
            olga,
        )
    assert resumed.status_code == 200 and [h["execution"] for h in resumed.json()["results"]] == [second]
    cancelled = post(
        client, "/api/v1/killswitch/held/", {"execution": second, "decision": "cancel", "reason": "no"}, olga
    )
    assert cancelled.status_code == 200 and cancelled.json()["results"] == []
    statuses = [
        get(client, f"/api/v1/executions/{e}/", agent_token).json()["status"] for e in (first, second)
    ]
    assert statuses == ["completed", "cancelled"]
    again = post(
        client, "/api/v1/killswitch/held/", {"execution": second, "decision": "cancel", "reason": "no"}, olga
    )
    assert (again.status_code, again.json()["code"]) == (409, "KILL_SWITCH_NOTHING_HELD")


def test_another_tenants_held_execution_is_not_found(client, tenant, agent_token):
    services.killswitch_set(scope="global", engaged=True, reason="drill", actor="cli")
    execution = post(client, "/api/v1/intents/", DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="h1").json()[
        "execution"
    ]
    services.killswitch_set(scope="global", engaged=False, reason="over", actor="cli")
    other = token_for(
        PrincipalFactory(tenant=TenantFactory(slug="other"), human=True, capabilities=["killswitch.manage"])
    )
    assert get(client, "/api/v1/killswitch/held/", other).json()["results"] == []
    before = LedgerEvent.objects.count()
    response = post(
        client,
        "/api/v1/killswitch/held/",
        {"execution": execution, "decision": "cancel", "reason": "x"},
        other,
    )
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
    assert LedgerEvent.objects.count() == before


def test_executions_of_other_tenants_are_invisible(client, agent_token):
    response = post(client, "/api/v1/intents/", DRAFT, agent_token, HTTP_IDEMPOTENCY_KEY="k5")
    other = token_for(PrincipalFactory(tenant=TenantFactory(slug="other"), capabilities=["executions.read"]))
    assert get(client, f"/api/v1/executions/{response.json()['execution']}/", other).status_code == 404


# --- the kill switch's scope: a tenant principal turns its own tenant's switch only ------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"scope": "global", "target": "", "engaged": True, "reason": "mine"},
        {"scope": "action", "target": "noop.echo", "engaged": True, "reason": "mine"},
        {"scope": "tenant", "target": "other", "engaged": True, "reason": "mine"},
    ],
    ids=["global", "action", "other-tenant"],
)
def test_a_tenant_principal_cannot_turn_installation_wide_or_other_tenants_switches(client, tenant, body):
    """Before, `killswitch.manage` granted in any tenant engaged the global switch, an action-wide one or
    another tenant's."""
    TenantFactory(slug="other")
    token = token_for(PrincipalFactory(tenant=tenant, human=True, capabilities=["killswitch.manage"]))
    before = (LedgerEvent.objects.count(), KillSwitch.objects.count())
    response = post(client, "/api/v1/killswitch/", body, token)
    assert (response.status_code, response.json()["code"]) == (403, "PLATFORM_SCOPE_REQUIRED")
    assert (LedgerEvent.objects.count(), KillSwitch.objects.count()) == before


def test_a_tenant_principal_turns_its_own_tenants_switch(client, tenant):
    token = token_for(PrincipalFactory(tenant=tenant, human=True, capabilities=["killswitch.manage"]))
    body = {"scope": "tenant", "target": tenant.slug, "engaged": True, "reason": "our incident"}
    response = post(client, "/api/v1/killswitch/", body, token)
    assert response.status_code == 200 and response.json()["engaged"] is True
    event = LedgerEvent.objects.get(type="controlplane.killswitch.engaged")
    assert event.tenant == tenant.slug


def test_the_kill_switch_list_hides_other_tenants_switches(client, tenant):
    """Before, GET /api/v1/killswitch/ listed every tenant's switches (and their reasons)."""
    services.killswitch_set(scope="tenant", target="other", engaged=True, reason="their secret", actor="cli")
    services.killswitch_set(scope="tenant", target=tenant.slug, engaged=True, reason="ours", actor="cli")
    services.killswitch_set(scope="global", engaged=False, reason="drill over", actor="cli")
    mine = token_for(PrincipalFactory(tenant=tenant, capabilities=["killswitch.manage"]))
    seen = {(s["scope"], s["target"]) for s in get(client, "/api/v1/killswitch/", mine).json()["results"]}
    assert seen == {("global", ""), ("tenant", tenant.slug)}
    platform = token_for(
        PrincipalFactory(tenant=tenant, capabilities=["killswitch.manage", "platform.killswitch.manage"])
    )
    seen = {(s["scope"], s["target"]) for s in get(client, "/api/v1/killswitch/", platform).json()["results"]}
    assert seen == {("global", ""), ("tenant", tenant.slug), ("tenant", "other")}
