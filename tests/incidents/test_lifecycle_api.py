"""The incident lifecycle through the API: people transition with actor and reason; illegal transitions
are 409 INCIDENT_TRANSITION_NOT_ALLOWED and write nothing; mitigation links a runtime intent."""

from __future__ import annotations

import pytest

from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import Intent
from incidents.models import Incident
from tests.identity.factories import PrincipalFactory, token_for
from tests.incidents.factories import auth, make_rule, open_incident

pytestmark = pytest.mark.django_db

REMEDIATION = {
    "goal": "roll back checkout",
    "context": {"ticket": "INC-1"},
    "steps": [{"key": "rollback", "action": "noop.echo", "inputs": {"message": "rollback"}}],
}


def act(client, token, incident, verb, **body):
    return client.post(
        f"/api/v1/incidents/{incident.pk}/{verb}/", body, content_type="application/json", **auth(token)
    )


def state(incident) -> tuple[str, int]:
    incident.refresh_from_db()
    return incident.status, LedgerEvent.objects.count()


def test_ack_mitigate_resolve_close_each_a_ledgered_act_of_a_person(client, incident, oncall, oncall_token):
    response = act(client, oncall_token, incident, "acknowledge")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "acknowledged"
    assert response.json()["allowed_transitions"] == ["mitigate", "resolve"]
    response = act(client, oncall_token, incident, "mitigate", reason="roll back", remediation=REMEDIATION)
    assert response.status_code == 200, response.content
    intent = Intent.objects.get()
    assert response.json()["remediation_intent"] == intent.pk
    assert (intent.principal_id, intent.plan.goal) == (oncall.pk, "roll back checkout")
    assert act(client, oncall_token, incident, "resolve", reason="rolled back").json()["status"] == "resolved"
    assert act(client, oncall_token, incident, "close").json()["status"] == "closed"
    incident.refresh_from_db()
    assert incident.acknowledged_at <= incident.mitigating_at <= incident.resolved_at <= incident.closed_at
    events = LedgerEvent.objects.filter(subject=f"incident/{incident.pk}").order_by("seq")
    assert [(e.type, e.actor) for e in events] == [
        ("controlplane.incident.opened", "system"),
        ("controlplane.incident.acknowledged", oncall.ref),
        ("controlplane.incident.mitigating", oncall.ref),
        ("controlplane.incident.resolved", oncall.ref),
        ("controlplane.incident.closed", oncall.ref),
    ]
    mitigating = events[2].data
    assert (mitigating["from"], mitigating["to"], mitigating["intent"], mitigating["reason"]) == (
        "acknowledged",
        "mitigating",
        intent.pk,
        "roll back",
    )


@pytest.mark.parametrize(
    ("path", "verb"),
    [
        ([], "close"),
        ([], "reopen"),
        (["acknowledge"], "acknowledge"),
        (["resolve"], "acknowledge"),
        (["resolve"], "mitigate"),
        (["resolve", "close"], "reopen"),
        (["resolve", "close"], "resolve"),
    ],
)
def test_an_illegal_transition_is_409_and_writes_nothing(client, incident, oncall_token, path, verb):
    for step in path:
        assert act(client, oncall_token, incident, step, reason="r").status_code == 200
    before = state(incident)
    body = {"reason": "r", "remediation": REMEDIATION} if verb == "mitigate" else {"reason": "r"}
    response = act(client, oncall_token, incident, verb, **body)
    assert response.status_code == 409
    assert response.json()["code"] == "INCIDENT_TRANSITION_NOT_ALLOWED"
    assert state(incident) == before
    assert Intent.objects.count() == 0


def test_reopen_from_resolved(client, incident, oncall_token):
    act(client, oncall_token, incident, "resolve", reason="looked fine")
    response = act(client, oncall_token, incident, "reopen", reason="errors are back")
    assert (response.status_code, response.json()["status"], response.json()["resolved_at"]) == (
        200,
        "open",
        None,
    )


def test_resolve_needs_a_reason_and_writes_nothing_without_one(client, incident, oncall_token):
    before = state(incident)
    response = act(client, oncall_token, incident, "resolve", reason="  ")
    assert (response.status_code, response.json()["code"]) == (400, "INCIDENT_REASON_REQUIRED")
    assert state(incident) == before


def test_only_people_transition_incidents(client, incident, tenant):
    agent = PrincipalFactory(tenant=tenant, name="fixer-bot", agent=True, capabilities=["incidents.manage"])
    token = token_for(agent)
    before = state(incident)
    response = act(client, token, incident, "acknowledge")
    assert (response.status_code, response.json()["code"]) == (403, "INCIDENT_ACTOR_NOT_HUMAN")
    assert state(incident) == before


def test_transitions_need_incidents_manage(client, incident, tenant):
    reader = PrincipalFactory(tenant=tenant, name="viewer", human=True, capabilities=["incidents.read"])
    token = token_for(reader)
    before = state(incident)
    response = act(client, token, incident, "acknowledge")
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")
    assert state(incident) == before


def test_mitigate_with_a_draft_that_does_not_compile_writes_nothing(client, incident, oncall_token):
    before = state(incident)
    bad = {"goal": "x", "steps": [{"key": "a", "action": "no.such.action", "inputs": {}}]}
    response = act(client, oncall_token, incident, "mitigate", reason="try", remediation=bad)
    assert (response.status_code, response.json()["code"]) == (400, "PLAN_UNKNOWN_ACTION")
    assert state(incident) == before
    assert Intent.objects.count() == 0


def test_mitigate_needs_exactly_one_remediation(client, incident, oncall_token):
    before = state(incident)
    response = act(client, oncall_token, incident, "mitigate", reason="try")
    assert (response.status_code, response.json()["code"]) == (400, "INCIDENT_REMEDIATION_REQUIRED")
    assert state(incident) == before


def test_mitigate_linking_an_existing_intent_of_the_tenant(client, incident, oncall, oncall_token):
    from controlplane.runtime.services import intent_submit

    intent = intent_submit(principal=oncall, draft=REMEDIATION, idempotency_key="prepared-fix")
    response = act(
        client, oncall_token, incident, "mitigate", reason="run the prepared fix", intent=intent.pk
    )
    assert response.json()["remediation_intent"] == intent.pk
    make_rule(incident.tenant, name="search-errors", match_service="search")
    other = act(
        client,
        oncall_token,
        open_incident(incident.tenant, service="search"),
        "mitigate",
        reason="x",
        intent="0" * 64,
    )
    assert (other.status_code, other.json()["code"]) == (404, "NOT_FOUND")


def test_raise_severity_only_up_with_a_reason(client, incident, oncall, oncall_token):
    assert incident.severity == "high"
    down = act(client, oncall_token, incident, "raise-severity", severity="medium", reason="calm")
    assert (down.status_code, down.json()["code"]) == (409, "INCIDENT_SEVERITY_NOT_RAISED")
    no_reason = act(client, oncall_token, incident, "raise-severity", severity="critical")
    assert no_reason.json()["code"] == "INCIDENT_REASON_REQUIRED"
    up = act(client, oncall_token, incident, "raise-severity", severity="critical", reason="payments down")
    assert up.json()["severity"] == "critical"
    event = LedgerEvent.objects.get(type="controlplane.incident.severity.raised")
    assert (event.actor, event.data["from"], event.data["to"], event.data["reason"]) == (
        oncall.ref,
        "high",
        "critical",
        "payments down",
    )


def test_other_tenants_incidents_are_invisible(client, incident):
    stranger = PrincipalFactory(
        name="mallory", human=True, capabilities=["incidents.read", "incidents.manage"]
    )
    token = token_for(stranger)
    assert client.get("/api/v1/incidents/", **auth(token)).json()["results"] == []
    assert client.get(f"/api/v1/incidents/{incident.pk}/", **auth(token)).status_code == 404
    response = act(client, token, incident, "acknowledge")
    assert (response.status_code, response.json()["code"]) == (404, "INCIDENT_NOT_FOUND")
    assert Incident.objects.get(pk=incident.pk).status == "open"
