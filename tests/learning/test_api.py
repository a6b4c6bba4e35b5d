"""The learning API: tenant-scoped reads, labels and decisions by people, claims by agents, each refusal
with its code and nothing written."""

from __future__ import annotations

import pytest

from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services as runtime
from controlplane.runtime.models import Execution
from learning import services
from learning.derive import outcome_id
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db

BASE = "/api/v1/learning"


@pytest.fixture
def acme(django_capture_on_commit_callbacks):
    celery_app.conf.task_always_eager = True
    try:
        tenant = TenantFactory(slug="acme")
        policy.profile_bootstrap(environment="dev")
        agent = PrincipalFactory(tenant=tenant, name="bot", agent=True, capabilities=["learning.claim"])
        with django_capture_on_commit_callbacks(execute=True):
            intent = runtime.intent_submit(
                principal=agent,
                draft={
                    "goal": "g",
                    "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "m"}}],
                },
                idempotency_key="k",
            )
        services.learning_sync(tenant=tenant)
        yield {"tenant": tenant, "agent": agent, "execution": Execution.objects.get(intent=intent)}
    finally:
        celery_app.conf.task_always_eager = False


def auth(principal):
    return {"HTTP_AUTHORIZATION": f"Bearer {token_for(principal)}"}


def test_outcomes_are_listed_for_the_callers_tenant_only(client, acme):
    reader = PrincipalFactory(tenant=acme["tenant"], human=True, capabilities=["learning.read"])
    body = client.get(f"{BASE}/outcomes/", **auth(reader)).json()
    assert [o["subject"] for o in body["results"]] == [acme["execution"].id]
    outsider = PrincipalFactory(
        tenant=TenantFactory(slug="other"), human=True, capabilities=["learning.read"]
    )
    assert client.get(f"{BASE}/outcomes/", **auth(outsider)).json()["results"] == []
    oid = outcome_id("execution", acme["execution"].id)
    missing = client.get(f"{BASE}/outcomes/{oid}/", **auth(outsider))
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")


def test_a_person_labels_an_outcome_and_an_agent_cannot(client, acme):
    oid = outcome_id("execution", acme["execution"].id)
    reviewer = PrincipalFactory(tenant=acme["tenant"], human=True, capabilities=["learning.review"])
    answer = client.post(
        f"{BASE}/outcomes/{oid}/labels/",
        {"label": "success", "reason": "held"},
        content_type="application/json",
        **auth(reviewer),
    )
    assert answer.status_code == 201
    assert LedgerEvent.objects.filter(type="controlplane.learning.label.recorded").count() == 1
    as_agent = auth(acme["agent"])  # issuing the token is an event of its own
    before = LedgerEvent.objects.count()
    refused = client.post(
        f"{BASE}/outcomes/{oid}/labels/",
        {"label": "success", "reason": "mine"},
        content_type="application/json",
        **as_agent,
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "CAPABILITY_MISSING")
    assert LedgerEvent.objects.count() == before


def test_an_agents_self_confirmed_claim_answers_its_finding_which_a_person_decides(client, acme):
    claimed = client.post(
        f"{BASE}/claims/",
        {"execution": acme["execution"].id, "result": "success"},
        content_type="application/json",
        **auth(acme["agent"]),
    )
    assert claimed.status_code == 201
    (finding,) = claimed.json()["findings"]
    assert finding["code"] == "LEARNING_ABUSE_SELF_CONFIRMED" and finding["severity"] == "block"
    reviewer = PrincipalFactory(tenant=acme["tenant"], human=True, capabilities=["learning.review"])
    decided = client.post(
        f"{BASE}/findings/{finding['fingerprint']}/decide/",
        {"status": "confirmed", "reason": "no runner confirmed it"},
        content_type="application/json",
        **auth(reviewer),
    )
    assert decided.status_code == 200 and decided.json()["status"] == "confirmed"
    again = client.post(
        f"{BASE}/findings/{finding['fingerprint']}/decide/",
        {"status": "dismissed", "reason": "changed my mind"},
        content_type="application/json",
        **auth(reviewer),
    )
    assert (again.status_code, again.json()["code"]) == (409, "LEARNING_FINDING_DECIDED")


def test_reports_are_read_by_hash(client, acme):
    _, digest = services.learning_calibrate(tenant=acme["tenant"], actor="test")
    reader = PrincipalFactory(tenant=acme["tenant"], human=True, capabilities=["learning.read"])
    listed = client.get(f"{BASE}/reports/", **auth(reader)).json()["results"]
    assert [r["content_hash"] for r in listed] == [digest]
    one = client.get(f"{BASE}/reports/{digest}/", **auth(reader)).json()
    assert one["content"]["agents"][0]["agent"] == "acme/bot"
