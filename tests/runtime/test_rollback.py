"""Rolling back a completed step: the compensating action its manifest declares runs as a governed step of
its own (an intent in the same trace, compiled, a policy verdict, an approval when its tier needs one),
linked to the step it undoes; API, console and CLI go through the one service."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution, Intent, StepRun
from controlplane.runtime.replay import replay_verify
from skills import services as skills
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.skills.support import ACTION, SigningPublisher, manifest

pytestmark = pytest.mark.django_db

ECHO = {"goal": "say hi", "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "hi"}}]}


@pytest.fixture(autouse=True)
def _eager():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def people():
    policy.profile_bootstrap(environment="dev")
    tenant = TenantFactory(slug="acme")
    agent = PrincipalFactory(tenant=tenant, name="bot", agent=True)
    pat = PrincipalFactory(
        tenant=tenant,
        name="pat",
        human=True,
        capabilities=["intents.submit", "executions.read", "console.view"],
    )
    return agent, pat


def _run(agent, capture, draft=ECHO, key="k"):
    with capture(execute=True):
        intent = services.intent_submit(principal=agent, draft=draft, idempotency_key=key)
    return Execution.objects.get(intent=intent)


def _post(client, path, body, token):
    return client.post(path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_completed_step_is_rolled_back_by_its_compensating_action(
    client, people, django_capture_on_commit_callbacks
):
    agent, pat = people
    execution = _run(agent, django_capture_on_commit_callbacks)
    path = f"/api/v1/executions/{execution.id}/steps/a/rollback/"
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, path, {"reason": "wrong greeting"}, token_for(pat))
    assert response.status_code == 202
    rollback = Intent.objects.get(pk=response.json()["id"])
    assert rollback.trace_id == execution.trace_id and rollback.principal == pat
    assert rollback.draft["context"] == {"rollback_of_execution": execution.id, "rollback_of_step": "a"}
    step = StepRun.objects.get(execution__intent=rollback)
    assert (step.step.action, step.step.inputs, step.status) == ("noop.echo", {"message": "hi"}, "completed")
    linked = LedgerEvent.objects.get(type="controlplane.execution.step.rollback_requested")
    assert linked.subject == f"execution/{execution.id}" and linked.data["rollback_intent"] == rollback.id
    assert linked.trace_id == execution.trace_id and linked.actor == pat.ref
    verified = LedgerEvent.objects.filter(type="controlplane.plan.verified", trace_id=execution.trace_id)
    assert verified.count() == 2  # the rollback got a policy verdict of its own
    again = _post(client, path, {"reason": "twice"}, token_for(pat))
    assert again.status_code == 202 and again.json()["id"] == rollback.id
    assert LedgerEvent.objects.filter(type="controlplane.execution.step.rollback_requested").count() == 1
    assert replay_verify().differences == []


def test_a_rollback_whose_tier_needs_approval_waits_for_it(
    client, people, django_capture_on_commit_callbacks
):
    from tests.skills.test_runtime import ASSIST

    agent, pat = people
    execution = _run(agent, django_capture_on_commit_callbacks)
    created = policy.profile_create(name="assist", environment="dev", content=ASSIST, actor="test")
    policy.profile_activate(profile=created.profile, actor="test", reason="approvals for everything")
    response = _post(
        client, f"/api/v1/executions/{execution.id}/steps/a/rollback/", {"reason": "r"}, token_for(pat)
    )
    assert response.status_code == 202
    step = StepRun.objects.get(execution__intent_id=response.json()["id"])
    assert step.status == "waiting_approval" and step.approval_id


def test_refusals_write_nothing(client, people, django_capture_on_commit_callbacks):
    agent, pat = people
    publisher = SigningPublisher()
    publisher.trust()
    skills.skill_install(envelope=publisher.sign(manifest(actions=[ACTION])), actor="test", reason="ops")
    restart = {"goal": "g", "steps": [{"key": "a", "action": "acme.restart", "inputs": {"service": "web"}}]}
    irreversible = _run(agent, django_capture_on_commit_callbacks, restart, key="r")
    token = token_for(pat)
    outsider = PrincipalFactory(
        tenant=TenantFactory(slug="other"), human=True, capabilities=["intents.submit"]
    )
    reader = PrincipalFactory(tenant=irreversible.tenant, human=True, capabilities=["executions.read"])
    tokens = token_for(outsider), token_for(reader)
    before = LedgerEvent.objects.count()
    cases = [
        (
            f"/api/v1/executions/{irreversible.id}/steps/a/rollback/",
            {"reason": "r"},
            409,
            "ROLLBACK_NOT_REVERSIBLE",
        ),
        (
            f"/api/v1/executions/{irreversible.id}/steps/zz/rollback/",
            {"reason": "r"},
            404,
            "ROLLBACK_STEP_UNKNOWN",
        ),
    ]
    for path, body, status, code in cases:
        response = _post(client, path, body, token)
        assert (response.status_code, response.json()["code"]) == (status, code)
    path = f"/api/v1/executions/{irreversible.id}/steps/a/rollback/"
    assert _post(client, path, {"reason": "r"}, tokens[0]).status_code == 404
    assert _post(client, path, {"reason": "r"}, tokens[1]).status_code == 403
    assert LedgerEvent.objects.count() == before
    assert Intent.objects.count() == 1


def test_a_step_not_completed_is_not_rolled_back(people, django_capture_on_commit_callbacks):
    from controlplane.kernel.errors import ControlPlaneError
    from controlplane.runtime.services.rollback import step_rollback
    from tests.skills.test_runtime import ASSIST

    agent, pat = people
    created = policy.profile_create(name="assist", environment="dev", content=ASSIST, actor="test")
    policy.profile_activate(profile=created.profile, actor="test", reason="approvals for everything")
    execution = _run(agent, django_capture_on_commit_callbacks)
    with pytest.raises(ControlPlaneError) as refusal:
        step_rollback(execution=execution, step_key="a", actor=pat, reason="r")
    assert refusal.value.code == "ROLLBACK_STEP_NOT_COMPLETED"
    assert not LedgerEvent.objects.filter(type="controlplane.execution.step.rollback_requested").exists()


def test_the_console_rollback_page(client, people, django_capture_on_commit_callbacks):
    agent, pat = people
    execution = _run(agent, django_capture_on_commit_callbacks)
    client.force_login(pat.user)
    trace = client.get(f"/traces/{execution.trace_id}/").content.decode()
    assert f"/traces/{execution.trace_id}/rollback/" in trace
    page = client.get(f"/traces/{execution.trace_id}/rollback/").content.decode()
    assert "<html" in page and 'data-step="a"' in page and "Roll back</button>" in page
    fragment = client.get(f"/traces/{execution.trace_id}/rollback/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and 'id="rollback"' in fragment
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            f"/traces/{execution.trace_id}/rollback/",
            {"execution": execution.id, "step": "a", "reason": "undo"},
            HTTP_HX_REQUEST="true",
        )
    assert done.status_code == 200 and "Rollback of a submitted" in done.content.decode()
    assert "rolled back: intent" in done.content.decode()
    assert Intent.objects.filter(draft__context__rollback_of_step="a").count() == 1


def test_the_rollback_command(people, django_capture_on_commit_callbacks, monkeypatch):
    agent, pat = people
    execution = _run(agent, django_capture_on_commit_callbacks)
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    with pytest.raises(CommandError, match=r"^AUTH_REQUIRED"):
        call_command("rollback", execution.id, "a", "--reason", "r")
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(pat))
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("rollback", execution.id, "a", "--reason", "undo", stdout=out)
    assert out.getvalue().startswith("rollback of a: intent ")
    with pytest.raises(CommandError, match=r"^ROLLBACK_STEP_UNKNOWN"):
        call_command("rollback", execution.id, "nope", "--reason", "r")
