"""Through the runtime: a step of a disabled skill is refused SKILL_NOT_ACTIVE at compilation, the refusal
is recorded on plan.rejected within its contract, and replay re-takes it with no difference."""

from __future__ import annotations

import pytest

from controlplane.kernel.contracts import REGISTRY
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution
from controlplane.runtime.replay import replay_verify
from skills import services as skills
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db

DRAFT = {"goal": "g", "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "hi"}}]}


def test_a_disabled_skill_refuses_compilation_and_replay_agrees():
    policy.profile_bootstrap(environment="dev")
    agent = PrincipalFactory(tenant=TenantFactory(slug="acme"), name="bot", agent=True)
    skills.skill_disable(name="core", actor="test", reason="drill")
    intent = services.intent_submit(principal=agent, draft=DRAFT, idempotency_key="k")
    assert intent.status == "rejected" and intent.rejection["code"] == "SKILL_NOT_ACTIVE"
    assert not Execution.objects.exists()
    event = LedgerEvent.objects.get(type="controlplane.plan.rejected")
    assert event.reason_codes == ["SKILL_NOT_ACTIVE"]
    assert event.data["contracts"] == [
        {"action": "noop.echo", "version": None, "resolved": None, "refused": "SKILL_NOT_ACTIVE"}
    ]
    assert REGISTRY.get("plan.rejected").errors(event.data) == []
    assert replay_verify().differences == []


ASSIST = {
    "tiers": {
        tier: {"mode": "assist", "quorum": 2 if tier == "critical" else 1, "approval_timeout_seconds": 600}
        for tier in ("low", "medium", "high", "critical")
    },
    "rules": [],
    "deny": [],
}


def test_a_waiting_step_of_a_skill_disabled_meanwhile_is_not_dispatched(django_capture_on_commit_callbacks):
    from approvals import services as approvals
    from approvals.models import ApprovalRequest
    from controlplane.celery import app as celery_app
    from controlplane.runtime.models import StepRun

    tenant = TenantFactory(slug="acme")
    agent = PrincipalFactory(tenant=tenant, name="bot", agent=True)
    alice = PrincipalFactory(tenant=tenant, name="alice", human=True, capabilities=["approvals.decide"])
    created = policy.profile_create(name="assist", environment="dev", content=ASSIST, actor="test")
    policy.profile_activate(profile=created.profile, actor="test", reason="approvals for everything")
    intent = services.intent_submit(principal=agent, draft=DRAFT, idempotency_key="wait")
    run = StepRun.objects.get(execution__intent=intent, step__key="a")
    request = ApprovalRequest.objects.get(pk=run.approval_id)
    skills.skill_disable(name="core", actor="test", reason="incident")
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            approvals.approval_decide(
                approval=request,
                actor=alice,
                decision="approve",
                reason="ok",
                content_hash=request.content_hash,
            )
    finally:
        celery_app.conf.task_always_eager = False
    run.refresh_from_db()
    assert run.status == "failed" and run.reason_codes == ["EXECUTOR_UNAVAILABLE"]
    assert not LedgerEvent.objects.filter(type="controlplane.execution.step.completed").exists()
