"""The runtime's approval subject, `runtime.step`: a step that policy says people must consent to.

`step_approval_await` opens the request, bound to the step's content hash; `step_approval_resolve` is the
resolver the approvals app calls inside the deciding transaction when the request reaches a final state.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.utils import timezone

from approvals import services as approvals
from approvals.models import ApprovalRequest, ApprovalStatus
from controlplane.identity.models import Principal
from controlplane.kernel.canonical import canonical_bytes
from controlplane.policy.evaluation import PolicyDecision
from controlplane.runtime.models import Execution, StepRun, StepStatus
from controlplane.runtime.services.dispatch import execution_advance, step_block
from controlplane.runtime.verdicts import escalation_ladder

APPROVAL_SUBJECT = "runtime.step"


def step_content_hash(*, run: StepRun) -> str:
    """What an approval of this step is bound to: plan, step, execution key, inputs and the decision."""
    step = run.step
    return hashlib.sha256(
        canonical_bytes(
            {
                "execution": run.execution_id,
                "plan": step.plan_id,
                "step": step.key,
                "execution_key": step.execution_key,
                "action": step.action,
                "action_version": step.action_version,
                "inputs": step.inputs,
                "decision_hash": run.decision_hash,
            }
        )
    ).hexdigest()


def step_approval_await(
    *, run: StepRun, principal: Principal, decision: PolicyDecision, at: datetime
) -> None:
    """Open the approval request the step's decision demands and make the step wait for it."""
    step = run.step
    request = approvals.approval_request_open(
        subject_kind=APPROVAL_SUBJECT,
        subject_id=str(run.pk),
        content_hash=step_content_hash(run=run),
        requested_by=principal,
        risk_tier=decision.tier,
        quorum=max(decision.quorum, 1),
        summary={
            "execution": run.execution_id,
            "plan": step.plan_id,
            "step": step.key,
            "action": step.action,
            "action_version": step.action_version,
            "inputs": step.inputs,
            "goal": step.plan.goal,
            "tier": decision.tier,
            "reason_codes": list(decision.reason_codes),
        },
        reason_codes=list(decision.reason_codes),
        timeout_seconds=decision.approval_timeout_seconds or None,
        escalation_ladder=escalation_ladder(decision=decision),
        traceparent=run.execution.traceparent,
        at=at,
    )
    run.approval = request
    run.wait_for_approval()
    run.save(update_fields=["status", "approval"])


def step_approval_resolve(approval: ApprovalRequest, /) -> None:
    """Clear or block the step once its approval request is final (approved: consume it and clear).

    Called by the approvals app inside the deciding transaction; positional, because the approvals
    registry calls every subject's resolver as `resolver(request)`.
    """
    run = (
        StepRun.objects.select_for_update()
        .select_related("execution__tenant", "step")
        .get(pk=int(approval.subject_id))
    )
    if run.status != StepStatus.WAITING_APPROVAL:
        return
    at = approval.decided_at or timezone.now()
    if approval.status == ApprovalStatus.APPROVED:
        approvals.approval_consume(approval=approval, content_hash=step_content_hash(run=run), at=at)
        run.clear()
        run.save(update_fields=["status"])
    else:
        code = {"rejected": "APPROVAL_REJECTED", "expired": "APPROVAL_EXPIRED"}.get(
            approval.status, "APPROVAL_CANCELLED"
        )
        step_block(run=run, codes=[code], at=at)
    execution_advance(execution=Execution.objects.select_for_update().get(pk=run.execution_id), at=at)
