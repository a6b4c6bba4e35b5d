"""Agent model-call telemetry: `POST /api/v1/telemetry/model-calls/`, through the translators, hashes not
text, on the trace and under the intent it led to; noncanonical fields refused in enforce, counted in warn."""

from __future__ import annotations

import hashlib

import pytest

from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services as runtime
from controlplane.runtime.traces import trace_get
from governance.models import EnforcementCount
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/telemetry/model-calls/"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
REPORTED = "controlplane.telemetry.model_call.reported"


@pytest.fixture
def tenant():
    return TenantFactory(slug="acme")


@pytest.fixture
def agent(tenant):
    return PrincipalFactory(
        tenant=tenant, name="bot", agent=True, capabilities=["telemetry.report", "intents.submit"]
    )


def post(client, principal, body):
    bearer = principal if isinstance(principal, str) else token_for(principal)
    return client.post(
        URL, body, content_type="application/json", headers={"Authorization": f"Bearer {bearer}"}
    )


OTEL = {
    "trace_id": TRACE,
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-x",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 80,
    "prompt": "restart the api pods please",
    "response": "plan: rollout restart",
    "tool_calls": ["kubectl.rollout"],
}


def test_an_otel_dialect_report_is_translated_hashed_and_ledgered_on_the_trace(client, agent):
    response = post(client, agent, OTEL)
    assert response.status_code == 201, response.json()
    assert response.json()["translator"] == "otel-genai" and response.json()["warnings"] == []
    event = LedgerEvent.objects.get(type=REPORTED)
    assert event.trace_id == TRACE and event.tenant == "acme" and event.actor == agent.ref
    assert event.data["model"] == "gpt-x" and event.data["system"] == "openai"
    assert (event.data["input_tokens"], event.data["output_tokens"]) == (1200, 80)
    assert event.data["prompt_sha256"] == hashlib.sha256(b"restart the api pods please").hexdigest()
    assert "prompt" not in event.data and "restart" not in event.canonical


def test_a_tenant_that_opted_in_keeps_the_text(client, agent, settings):
    settings.CONTROLPLANE_TELEMETRY_TEXT_TENANTS = ["acme"]
    assert post(client, agent, OTEL).status_code == 201
    assert LedgerEvent.objects.get(type=REPORTED).data["prompt"] == "restart the api pods please"


def test_the_canonical_envelope_and_a_fallback_dialect_together(client, agent):
    body = {
        "trace_id": TRACE,
        "genai": {
            "model": "small",
            "input_tokens": 5,
            "output_tokens": 1,
            "cost": "0.0004",
            "currency": "USD",
        },
        "fallbackUsed": True,
        "fallbackFrom": "large",
        "fallbackTo": "small",
        "fallbackReason": "rate limited",
        "prompt_sha256": "a" * 64,
        "response_sha256": "b" * 64,
    }
    response = post(client, agent, body)
    assert response.status_code == 201 and response.json()["translator"] == "camel-fallback"
    event = LedgerEvent.objects.get(type=REPORTED)
    assert event.fidelity == "degraded" and event.reason_codes == ["RATE_LIMITED"]  # read as a catalogue code
    assert event.data["cost"] == "0.0004"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"trace_id": "nope"}, "TRACE_ID_INVALID"),
        ({"gen_ai.request.model": ""}, "VALIDATION_FAILED"),
        ({"gen_ai.usage.input_tokens": -1}, "VALIDATION_FAILED"),
        ({"prompt": None, "prompt_sha256": "short"}, "VALIDATION_FAILED"),
        ({"intent": "no-such-intent"}, "NOT_FOUND"),
    ],
)
def test_a_bad_report_is_refused_with_its_code_and_nothing_is_written(client, agent, change, code):
    body = {key: value for key, value in {**OTEL, **change}.items() if value is not None}
    bearer = token_for(agent)
    before = LedgerEvent.objects.count()
    response = post(client, bearer, body)
    assert response.json()["code"] == code and LedgerEvent.objects.count() == before


def test_only_an_agent_reports_model_calls(client, tenant):
    service = PrincipalFactory(tenant=tenant, capabilities=["telemetry.report"])
    response = post(client, service, OTEL)
    assert response.status_code == 403 and response.json()["code"] == "TELEMETRY_AGENT_REQUIRED"
    assert not LedgerEvent.objects.filter(type=REPORTED).exists()


def test_a_noncanonical_field_is_refused_in_enforce_and_counted_in_warn(client, agent, settings):
    settings.CONTROLPLANE_GOVERNANCE_MODES = {"dev": {"envelope": "enforce"}}
    refused = post(client, agent, {**OTEL, "vendorExtra": 1})
    assert refused.status_code == 400 and refused.json()["code"] == "TELEMETRY_NONCANONICAL"
    assert "vendorExtra" in refused.json()["detail"]
    assert not LedgerEvent.objects.filter(type=REPORTED).exists()
    settings.CONTROLPLANE_GOVERNANCE_MODES = {}  # dev warns
    warned = post(client, agent, {**OTEL, "vendorExtra": 1})
    assert warned.status_code == 201 and warned.json()["warnings"] == ["TELEMETRY_NONCANONICAL"]
    event = LedgerEvent.objects.get(type=REPORTED)
    assert "vendorExtra" not in event.data and event.data["warnings"] == ["TELEMETRY_NONCANONICAL"]
    counts = {(c.outcome, c.tenant, c.code): c.count for c in EnforcementCount.objects.all()}
    assert counts == {
        ("refused", "acme", "TELEMETRY_NONCANONICAL"): 1,
        ("would_refuse", "acme", "TELEMETRY_NONCANONICAL"): 1,
    }


def test_the_model_call_shows_under_the_intent_it_led_to(client, agent, django_capture_on_commit_callbacks):
    celery_app.conf.task_always_eager = True
    try:
        policy.profile_bootstrap(environment="dev")
        draft = {"goal": "echo", "steps": [{"key": "a", "action": "noop.echo", "inputs": {}}]}
        with django_capture_on_commit_callbacks(execute=True):
            intent = runtime.intent_submit(
                principal=agent, draft=draft, idempotency_key="k", traceparent=TRACEPARENT
            )
    finally:
        celery_app.conf.task_always_eager = False
    assert post(client, agent, {**OTEL, "intent": intent.pk}).status_code == 201
    trace = trace_get(trace_id=TRACE, tenant=agent.tenant)
    root = next(node for node in trace.roots if node.kind == "intent")
    calls = [child for child in root.children if child.title == REPORTED]
    assert len(calls) == 1 and calls[0].detail["model"] == "gpt-x"
    # and the console's trace explorer draws it, under the intent
    viewer = PrincipalFactory(
        tenant=agent.tenant, human=True, capabilities=["console.view", "executions.read"]
    )
    client.force_login(viewer.user)
    html = client.get(f"/traces/{TRACE}/").content.decode()
    assert "data-model-call" in html and "model gpt-x · 1200 in / 80 out" in html


def test_another_tenants_agent_cannot_report_for_an_intent_it_does_not_own(
    client, agent, django_capture_on_commit_callbacks
):
    celery_app.conf.task_always_eager = True
    try:
        policy.profile_bootstrap(environment="dev")
        draft = {"goal": "echo", "steps": [{"key": "a", "action": "noop.echo", "inputs": {}}]}
        with django_capture_on_commit_callbacks(execute=True):
            intent = runtime.intent_submit(
                principal=agent, draft=draft, idempotency_key="k", traceparent=TRACEPARENT
            )
    finally:
        celery_app.conf.task_always_eager = False
    intruder = PrincipalFactory(
        tenant=TenantFactory(slug="globex"), agent=True, capabilities=["telemetry.report"]
    )
    response = post(client, intruder, {**OTEL, "intent": intent.pk})
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    assert not LedgerEvent.objects.filter(type=REPORTED).exists()
