"""Every learning event through the services, for the contract drift test (tests/project/test_contracts.py):
a claim (self-confirmed: a finding), its decision, a label, a report, and an autonomy proposal."""

from __future__ import annotations

from typing import Any

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.identity.models import Tenant
from controlplane.runtime import services as runtime
from controlplane.runtime.models import StepRun
from learning import profile as learning_profile
from learning import services
from learning.models import Finding, Outcome
from tests.identity.factories import PrincipalFactory


def write_every_learning_event(*, tenant: Tenant, agent: Any, monkeypatch: Any, capture: Any) -> None:
    """Needs `agent`'s tenant to hold a finished execution no person approved, and a policy profile that
    asks a person to approve a `noop.echo` step (the drift test's flow has both)."""
    rules = {**learning_profile.DEFAULT_PROFILE["autonomy"], "min_successes": 1}
    monkeypatch.setitem(learning_profile.DEFAULT_PROFILE, "autonomy", rules)
    reviewer = PrincipalFactory(
        tenant=tenant, name="learning-reviewer", human=True, capabilities=["learning.review"]
    )
    approver = PrincipalFactory(
        tenant=tenant, name="learning-approver", human=True, capabilities=["approvals.decide"]
    )
    earner = PrincipalFactory(tenant=tenant, name="steady-bot", agent=True)
    draft = {"goal": "earn", "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "steady"}}]}
    intent = runtime.intent_submit(principal=earner, draft=draft, idempotency_key="learning-earn")
    request = ApprovalRequest.objects.get(pk=StepRun.objects.get(execution__intent=intent).approval_id)
    with capture(execute=True):
        approvals.approval_decide(
            approval=request,
            actor=approver,
            decision="approve",
            reason="ok",
            content_hash=request.content_hash,
        )
    services.learning_sync(tenant=tenant)
    plain = Outcome.objects.filter(tenant=tenant, kind="execution", facts__human_approved=False).first()
    services.claim_record(principal=agent, execution=plain.subject, result="success")
    finding = Finding.objects.filter(tenant=tenant, code="LEARNING_ABUSE_SELF_CONFIRMED").first()
    services.finding_decide(
        actor=reviewer, fingerprint=finding.fingerprint, status="dismissed", reason="a drill"
    )
    services.label_record(reviewer=reviewer, outcome=plain.id, label="success", reason="it held")
    runtime.killswitch_set(scope="global", engaged=True, reason="learning drill", actor="cli")
    runtime.killswitch_set(scope="global", engaged=False, reason="drill over", actor="cli")
    services.learning_calibrate(tenant=tenant, actor="test")
