"""Every write of the runtime: intent -> plan -> verdicts -> execution -> step runs -> outcome.

`intent_submit` compiles the draft (deterministically), records the plan, asks policy for a verdict per
step, opens approval requests where people must consent, and starts the execution; ready steps are
dispatched to Celery when the transaction commits. The worker side (publish, run with a lease, retry,
sweep) is in `execution.py`. Every transition appends its ledger event in the same transaction;
`intent_submit`, `execution_cancel` and the worker's claim and finish defer theirs to the end of it
(`ledger_deferred`: one chain append, the chain's lock taken after every row lock and held only from
there to the commit), so nothing in them may read an appended event's seq.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals import services as approvals
from approvals.models import ApprovalRequest, ApprovalStatus
from controlplane.identity.models import Principal
from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.context import new_traceparent, parse_traceparent
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.batch import ledger_deferred
from controlplane.ledger.services import ledger_append
from controlplane.policy.evaluation import Context, PolicyDecision, ProfileContent, StepFacts, evaluate
from controlplane.policy.selectors import active_profile
from controlplane.runtime.compiler import CompiledPlan, PlanRejected, compile_plan
from controlplane.runtime.models import (
    STEP_FINAL,
    Execution,
    ExecutionStatus,
    Intent,
    IntentStatus,
    KillSwitch,
    KillSwitchScope,
    Plan,
    PlanStep,
    PolicyVerdict,
    StepRun,
    StepStatus,
)
from skills.selectors import contract_resolver

logger = logging.getLogger(__name__)

APPROVAL_SUBJECT = "runtime.step"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _event(
    type_: str,
    *,
    subject: str,
    data: dict[str, Any],
    tenant: str,
    actor: str,
    at: datetime,
    traceparent: str,
    codes: list[str] | tuple[str, ...] = (),
    causation_id: str = "",
) -> None:
    ledger_append(
        type=type_,
        subject=subject,
        data=data,
        tenant=tenant,
        actor=actor,
        time=at,
        traceparent=traceparent,
        reason_codes=list(codes),
        causation_id=causation_id,
    )


# --- intents and plans ---------------------------------------------------------------------------------


def _record_plan(compiled: CompiledPlan, tenant_id: int, at: datetime) -> Plan:
    plan, created = Plan.objects.get_or_create(
        id=compiled.plan_id,
        defaults={
            "tenant_id": tenant_id,
            "goal": compiled.goal,
            "context": compiled.context,
            "canonical": compiled.canonical.decode(),
            "compiled_at": at,
        },
    )
    if created:
        PlanStep.objects.bulk_create(
            PlanStep(
                plan=plan,
                key=s.key,
                position=index,
                action=s.action,
                action_version=s.action_version,
                executor=s.executor,
                contract_hash=s.contract_hash,
                base_tier=s.risk_tier,
                inputs=s.inputs,
                depends_on=list(s.depends_on),
                execution_key=s.execution_key,
            )
            for index, s in enumerate(compiled.steps)
        )
    return plan


def policy_context(*, principal: Principal, environment: str, plan_context: dict) -> Context:
    """Who asks and where, as policy sees it; recorded on `plan.verified` so replay re-evaluates with it."""
    labels = {k: str(v) for k, v in plan_context.items() if isinstance(v, str | int | bool)}
    return Context(
        environment=environment,
        principal_kind=principal.kind,
        principal=principal.ref,
        tenant=principal.tenant.slug,
        labels=labels,
    )


def step_decision(*, step: PlanStep, context: Context, profile: ProfileContent | None) -> PolicyDecision:
    """The policy decision for one step under the execution's profile (replay asks again the same way).

    The caller reads and parses the profile once per execution, so every step of a plan is judged by the
    same version, the one recorded on the execution.
    """
    return evaluate(
        step=StepFacts(
            action=step.action, tier=step.base_tier, inputs=step.inputs, action_version=step.action_version
        ),
        context=context,
        profile=profile,
    )


@transaction.atomic
@ledger_deferred()  # the intent's events (and its approvals') go on the chain together, at the end
def intent_submit(
    *,
    principal: Principal,
    draft: dict[str, Any],
    idempotency_key: str,
    traceparent: str | None = None,
    at: datetime | None = None,
) -> Intent:
    """Accept a plan draft once per (principal, idempotency key); compile, verify and start it.

    A draft that does not compile is recorded (the intent, status `rejected`, and
    `controlplane.plan.rejected` with the reason code), so the refusal itself is kept; the API answers 4xx.
    Re-submitting the same key returns the original intent; a different draft under the same key is
    refused with IDEMPOTENCY_KEY_CONFLICT and writes nothing. `intent.created` on the returned instance
    tells which happened (True: this call created it).
    """
    if not idempotency_key or len(idempotency_key) > 255:
        raise ControlPlaneError(
            "IDEMPOTENCY_KEY_REQUIRED", "send an Idempotency-Key header (1-255 characters)"
        )
    intent_id = _sha256(f"{principal.ref}\n{idempotency_key}")
    draft_hash = hashlib.sha256(canonical_bytes(draft)).hexdigest()
    existing = Intent.objects.filter(pk=intent_id).select_related("plan").first()
    if existing:
        if hashlib.sha256(canonical_bytes(existing.draft)).hexdigest() != draft_hash:
            raise ControlPlaneError(
                "IDEMPOTENCY_KEY_CONFLICT", "this Idempotency-Key was used for another draft"
            )
        existing.created = False
        return existing
    at = at or timezone.now()
    traceparent = traceparent if parse_traceparent(traceparent) else new_traceparent()
    trace_id = parse_traceparent(traceparent)[0]
    tenant = principal.tenant
    common = {"tenant": tenant.slug, "actor": principal.ref, "at": at, "traceparent": traceparent}
    intent = Intent(
        id=intent_id,
        tenant=tenant,
        principal=principal,
        idempotency_key=idempotency_key,
        draft=draft,
        status=IntentStatus.COMPILED,
        traceparent=traceparent,
        trace_id=trace_id,
        received_at=at,
    )
    _event(
        "controlplane.intent.received",
        subject=f"intent/{intent_id}",
        data={
            "intent": intent_id,
            "idempotency_key": idempotency_key,
            "draft_hash": draft_hash,
            "draft": draft,
        },
        **common,
    )
    # What each contract lookup answered, so replay can re-run a refused compilation against the same
    # registry (a compiled plan records its contracts in its steps).
    lookups: list[dict[str, Any]] = []

    def resolve(name: str, version: str | None) -> Any:
        contract = contract_resolver(name, version)
        lookups.append(
            {"action": name, "version": version, "resolved": contract["version"] if contract else None}
        )
        return contract

    try:
        compiled = compile_plan(draft, resolve)
    except PlanRejected as refusal:
        intent.status = IntentStatus.REJECTED
        intent.rejection = refusal.as_dict()
        intent.save(force_insert=True)
        _event(
            "controlplane.plan.rejected",
            subject=f"intent/{intent_id}",
            codes=[refusal.code],
            data={"intent": intent_id, **refusal.as_dict(), "contracts": lookups},
            **common,
        )
        intent.created = True
        return intent
    plan = _record_plan(compiled, tenant.pk, at)
    intent.plan = plan
    intent.save(force_insert=True)
    _event(
        "controlplane.plan.compiled",
        subject=f"plan/{plan.id}",
        data={
            "intent": intent_id,
            "plan": plan.id,
            "canonical_sha256": plan.id,
            "goal": compiled.goal,
            "context": compiled.context,
            "steps": [s.as_dict() for s in compiled.steps],
        },
        **common,
    )
    _execution_start(intent=intent, plan=plan, principal=principal, at=at)
    intent.created = True
    return intent


def _execution_start(*, intent: Intent, plan: Plan, principal: Principal, at: datetime) -> Execution:
    environment = settings.CONTROLPLANE_ENV
    profile = active_profile(environment=environment)
    execution = Execution.objects.create(
        id=_sha256(f"execution\n{intent.id}"),
        intent=intent,
        plan=plan,
        tenant=intent.tenant,
        trace_id=intent.trace_id,
        traceparent=intent.traceparent,
        environment=environment,
        profile_name=profile.name if profile else "",
        profile_version=profile.version if profile else None,
        profile_hash=profile.content_hash if profile else "",
        started_at=at,
    )
    common = {
        "tenant": intent.tenant.slug,
        "actor": principal.ref,
        "at": at,
        "traceparent": intent.traceparent,
    }
    context = policy_context(principal=principal, environment=environment, plan_context=plan.context)
    content = profile.as_content() if profile else None
    verdicts = []
    runs = []
    for step in plan.steps.order_by("position"):
        decision = step_decision(step=step, context=context, profile=content)
        run = StepRun.objects.create(
            execution=execution,
            step=step,
            verdict=decision.verdict,
            enforced=decision.enforced,
            effective_tier=decision.tier,
            quorum=decision.quorum,
            decision=decision.as_dict(),
            decision_hash=decision.decision_hash,
        )
        runs.append((run, decision))
        verdicts.append(
            {
                "step": step.key,
                "verdict": decision.verdict,
                "enforced": decision.enforced,
                "effective_verdict": decision.effective_verdict,
                "tier": decision.tier,
                "quorum": decision.quorum,
                "decision_hash": decision.decision_hash,
                "reason_codes": list(decision.reason_codes),
            }
        )
    _event(
        "controlplane.plan.verified",
        subject=f"execution/{execution.id}",
        data={
            "execution": execution.id,
            "plan": plan.id,
            "environment": environment,
            "profile": {
                "name": execution.profile_name,
                "version": execution.profile_version,
                "content_hash": execution.profile_hash,
            },
            "context": {
                "environment": context.environment,
                "principal_kind": context.principal_kind,
                "principal": context.principal,
                "tenant": context.tenant,
                "labels": dict(context.labels),
            },
            "verdicts": verdicts,
        },
        **common,
    )
    _event(
        "controlplane.execution.started",
        subject=f"execution/{execution.id}",
        data={"execution": execution.id, "intent": intent.id, "plan": plan.id},
        **common,
    )
    for run, decision in runs:
        # A deny that dev only warns about is not enforced: act on what the tier's mode would give instead.
        acting = decision.verdict if decision.enforced else decision.effective_verdict
        if acting == PolicyVerdict.DENY:
            _step_block(run, codes=list(decision.reason_codes), at=at)
        elif acting == PolicyVerdict.REQUIRE_APPROVAL:
            _step_await_approval(run, principal=principal, decision=decision, at=at)
        else:
            run.clear()
            run.save(update_fields=["status"])
    _execution_advance(execution, at=at)
    return execution


def step_content_hash(run: StepRun) -> str:
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


def _step_await_approval(
    run: StepRun, *, principal: Principal, decision: PolicyDecision, at: datetime
) -> None:
    step = run.step
    request = approvals.approval_request_open(
        subject_kind=APPROVAL_SUBJECT,
        subject_id=str(run.pk),
        content_hash=step_content_hash(run),
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
        escalation_ladder=[{"after_seconds": e.after_seconds, "level": e.level} for e in decision.escalation],
        traceparent=run.execution.traceparent,
        at=at,
    )
    run.approval = request
    run.wait_for_approval()
    run.save(update_fields=["status", "approval"])


def _step_block(run: StepRun, *, codes: list[str], at: datetime) -> None:
    run.block()
    run.reason_codes = list(dict.fromkeys([*run.reason_codes, *codes]))
    run.finished_at = at
    run.save(update_fields=["status", "reason_codes", "finished_at"])
    execution = run.execution
    _event(
        "controlplane.execution.step.blocked",
        subject=f"execution/{execution.id}",
        codes=codes,
        data={"execution": execution.id, "step": run.step.key, "execution_key": run.step.execution_key},
        tenant=execution.tenant.slug,
        actor="system",
        at=at,
        traceparent=execution.traceparent,
    )


# --- approvals resolver --------------------------------------------------------------------------------


def resolve_step_approval(request: ApprovalRequest) -> None:
    """Called by the approvals app inside the deciding transaction on a final decision."""
    run = (
        StepRun.objects.select_for_update()
        .select_related("execution__tenant", "step")
        .get(pk=int(request.subject_id))
    )
    if run.status != StepStatus.WAITING_APPROVAL:
        return
    at = request.decided_at or timezone.now()
    if request.status == ApprovalStatus.APPROVED:
        approvals.approval_consume(request=request, content_hash=step_content_hash(run), at=at)
        run.clear()
        run.save(update_fields=["status"])
    else:
        code = {"rejected": "APPROVAL_REJECTED", "expired": "APPROVAL_EXPIRED"}.get(
            request.status, "APPROVAL_CANCELLED"
        )
        _step_block(run, codes=[code], at=at)
    _execution_advance(Execution.objects.select_for_update().get(pk=run.execution_id), at=at)


# --- kill switch ---------------------------------------------------------------------------------------


def kill_switch_engaged_for(*, tenant: str, action: str) -> KillSwitch | None:
    """The engaged switch that covers this tenant and action, if any. Read fresh each time (no cache)."""
    from django.db.models import Q

    return (
        KillSwitch.objects.filter(engaged=True)
        .filter(
            Q(scope=KillSwitchScope.GLOBAL)
            | Q(scope=KillSwitchScope.TENANT, target=tenant)
            | Q(scope=KillSwitchScope.ACTION, target=action)
        )
        .order_by("scope")
        .first()
    )


@transaction.atomic
def killswitch_set(
    *, scope: str, target: str = "", engaged: bool, reason: str, actor: str, at: datetime | None = None
) -> KillSwitch:
    """Engage or release a kill switch; every change is a ledgered, reasoned act."""
    if scope not in KillSwitchScope.values:
        raise ControlPlaneError(
            "VALIDATION_FAILED", f"scope must be one of {', '.join(KillSwitchScope.values)}"
        )
    if (scope == KillSwitchScope.GLOBAL) != (target == ""):
        raise ControlPlaneError(
            "VALIDATION_FAILED", "a global switch has no target; tenant and action ones need one"
        )
    if not reason or not reason.strip():
        raise ControlPlaneError(
            "KILL_SWITCH_REASON_REQUIRED", "engaging or releasing the kill switch needs a reason"
        )
    at = at or timezone.now()
    switch, _ = KillSwitch.objects.select_for_update().update_or_create(
        scope=scope,
        target=target,
        defaults={"engaged": engaged, "reason": reason.strip(), "changed_by": actor, "changed_at": at},
    )
    ledger_append(
        type="controlplane.killswitch.engaged" if engaged else "controlplane.killswitch.released",
        subject=f"killswitch/{scope}/{target or '*'}",
        data={"scope": scope, "target": target, "reason": reason.strip()},
        tenant=target if scope == KillSwitchScope.TENANT else "",
        actor=actor,
        time=at,
        reason_codes=["KILL_SWITCH_ENGAGED"] if engaged else [],
    )
    return switch


# --- dispatch and execution ----------------------------------------------------------------------------


def _execution_advance(execution: Execution, *, at: datetime) -> None:
    """Dispatch every cleared step whose dependencies completed; finish the execution when all are final."""
    if execution.status != ExecutionStatus.RUNNING:
        return
    runs = list(execution.step_runs.select_related("step").order_by("step__position"))
    status_by_key = {run.step.key: run.status for run in runs}
    common = {
        "tenant": execution.tenant.slug,
        "actor": "system",
        "at": at,
        "traceparent": execution.traceparent,
    }
    if any(run.status in (StepStatus.BLOCKED, StepStatus.FAILED) for run in runs):
        for run in runs:
            if run.status in (StepStatus.PENDING, StepStatus.WAITING_APPROVAL, StepStatus.READY):
                run.cancel()
                run.finished_at = at
                run.save(update_fields=["status", "finished_at"])
                if run.approval_id:
                    approval = run.approval
                    if approval.status == ApprovalStatus.PENDING:
                        approvals.approval_cancel(
                            request=approval, actor="system", reason="execution failed", at=at
                        )
        if not any(run.status == StepStatus.RUNNING for run in runs):
            codes = sorted(
                {
                    code
                    for run in runs
                    if run.status in (StepStatus.BLOCKED, StepStatus.FAILED)
                    for code in run.reason_codes
                }
            )
            execution.fail()
            execution.finished_at = at
            execution.reason_codes = codes
            execution.save(update_fields=["status", "finished_at", "reason_codes"])
            _event(
                "controlplane.execution.failed",
                subject=f"execution/{execution.id}",
                codes=codes,
                data={"execution": execution.id},
                **common,
            )
        return
    if all(run.status == StepStatus.COMPLETED for run in runs):
        execution.complete()
        execution.finished_at = at
        execution.save(update_fields=["status", "finished_at"])
        _event(
            "controlplane.execution.completed",
            subject=f"execution/{execution.id}",
            data={"execution": execution.id, "outcomes": {r.step.key: r.outcome for r in runs}},
            **common,
        )
        return
    blocked = False
    for run in runs:
        if (
            run.status == StepStatus.READY
            and run.dispatched_at is None
            and all(status_by_key[dep] == StepStatus.COMPLETED for dep in run.step.depends_on)
        ):
            blocked |= not _dispatch(run, at=at)
    if blocked:
        _execution_advance(execution, at=at)


def _dispatch(run: StepRun, *, at: datetime) -> bool:
    """Send a cleared step to a worker when the transaction commits; False if the kill switch holds it."""
    execution = run.execution
    switch = kill_switch_engaged_for(tenant=execution.tenant.slug, action=run.step.action)
    if switch is not None:
        _step_block(run, codes=["KILL_SWITCH_ENGAGED"], at=at)
        return False
    # The step row is the outbox: the task is published after commit; if the broker is down the step
    # stays here (enqueued_at empty) and the sweeper publishes it later (see execution.py).
    run.dispatched_at = at
    run.enqueued_at = None
    run.save(update_fields=["dispatched_at", "enqueued_at"])
    from controlplane.runtime.execution import step_publish_on_commit

    step_publish_on_commit(run)
    return True


@transaction.atomic
@ledger_deferred()
def execution_cancel(*, execution: Execution, actor: Principal, reason: str) -> Execution:
    """Stop further steps; a step already running finishes and is recorded."""
    execution = Execution.objects.select_for_update().select_related("tenant").get(pk=execution.pk)
    if execution.status != ExecutionStatus.RUNNING:
        raise ControlPlaneError("EXECUTION_NOT_RUNNING", f"the execution is {execution.status}")
    at = timezone.now()
    for run in execution.step_runs.select_related("approval"):
        if run.status not in STEP_FINAL and run.status != StepStatus.RUNNING:
            run.cancel()
            run.finished_at = at
            run.save(update_fields=["status", "finished_at"])
            if run.approval_id and run.approval.status == ApprovalStatus.PENDING:
                approvals.approval_cancel(request=run.approval, actor=actor.ref, reason=reason, at=at)
    execution.cancel()
    execution.finished_at = at
    execution.save(update_fields=["status", "finished_at"])
    _event(
        "controlplane.execution.cancelled",
        subject=f"execution/{execution.id}",
        data={"execution": execution.id, "reason": reason},
        tenant=execution.tenant.slug,
        actor=actor.ref,
        at=at,
        traceparent=execution.traceparent,
    )
    return execution
