"""Intents and plans: accept a draft once, compile it, verify every step with policy, start the execution.

`intent_submit` and `execution_start` defer their ledger events to the end of the transaction
(`ledger_deferred`: one chain append, the chain's lock taken after every row lock and held only from
there to the commit), so nothing in them may read an appended event's seq.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.context import new_traceparent, parse_traceparent
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.batch import ledger_deferred
from controlplane.ledger.services import ledger_append
from controlplane.policy.evaluation import Context, PolicyDecision
from controlplane.policy.models import PolicyProfile, PolicyVerdict
from controlplane.policy.selectors import active_profile
from controlplane.runtime.compiler import CompiledPlan, PlanRejected, plan_compile
from controlplane.runtime.models import Execution, Intent, IntentStatus, Plan, PlanStep, StepRun
from controlplane.runtime.services.approval_subject import step_approval_await
from controlplane.runtime.services.common import sha256_text
from controlplane.runtime.services.dispatch import execution_advance, step_block
from controlplane.runtime.verdicts import (
    policy_context_build,
    policy_context_record,
    step_decide,
    verdict_acting,
    verdict_record,
)
from skills.selectors import contract_resolver


def _draft_hash(draft: Any) -> str:
    return hashlib.sha256(canonical_bytes(draft)).hexdigest()


def _plan_record(compiled: CompiledPlan, tenant_id: int, at: datetime) -> Plan:
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


def _recording_resolver(lookups: list[dict[str, Any]]) -> Callable[[str, str | None], Any]:
    """The skills registry's contract lookup, noting what each lookup answered.

    Recorded on `plan.rejected` so replay can re-run a refused compilation against the same registry (a
    compiled plan records its contracts in its steps).
    """

    def resolve(name: str, version: str | None) -> Any:
        try:
            contract = contract_resolver(name, version)
        except ControlPlaneError as refusal:  # the registry's own refusal (SKILL_NOT_ACTIVE), replayed as is
            lookups.append({"action": name, "version": version, "resolved": None, "refused": refusal.code})
            raise
        lookups.append(
            {"action": name, "version": version, "resolved": contract["version"] if contract else None}
        )
        return contract

    return resolve


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
    intent_id = sha256_text(f"{principal.ref}\n{idempotency_key}")
    draft_hash = _draft_hash(draft)
    existing = Intent.objects.filter(pk=intent_id).select_related("plan").first()
    if existing:
        if _draft_hash(existing.draft) != draft_hash:
            raise ControlPlaneError(
                "IDEMPOTENCY_KEY_CONFLICT", "this Idempotency-Key was used for another draft"
            )
        existing.created = False
        return existing
    at = at or timezone.now()
    traceparent = traceparent if parse_traceparent(traceparent) else new_traceparent()
    intent = Intent(
        id=intent_id,
        tenant=principal.tenant,
        principal=principal,
        idempotency_key=idempotency_key,
        draft=draft,
        status=IntentStatus.COMPILED,
        traceparent=traceparent,
        trace_id=parse_traceparent(traceparent)[0],
        received_at=at,
    )
    common = {"tenant": principal.tenant.slug, "actor": principal.ref, "time": at, "traceparent": traceparent}
    ledger_append(
        type="controlplane.intent.received",
        subject=f"intent/{intent_id}",
        data={
            "intent": intent_id,
            "idempotency_key": idempotency_key,
            "draft_hash": draft_hash,
            "draft": draft,
        },
        **common,
    )
    _intent_compile(intent=intent, principal=principal, at=at, common=common)
    intent.created = True
    return intent


def _intent_compile(*, intent: Intent, principal: Principal, at: datetime, common: dict[str, Any]) -> None:
    """Compile the intent's draft; record the plan and start it, or record the refusal."""
    lookups: list[dict[str, Any]] = []
    try:
        compiled = plan_compile(
            draft=intent.draft, resolve=_recording_resolver(lookups), tenant=intent.tenant.slug
        )
    except PlanRejected as refusal:
        intent.status = IntentStatus.REJECTED
        intent.rejection = refusal.as_dict()
        intent.save(force_insert=True)
        ledger_append(
            type="controlplane.plan.rejected",
            subject=f"intent/{intent.id}",
            reason_codes=[refusal.code],
            data={"intent": intent.id, **refusal.as_dict(), "contracts": lookups},
            **common,
        )
        return
    plan = _plan_record(compiled, intent.tenant.pk, at)
    intent.plan = plan
    intent.save(force_insert=True)
    ledger_append(
        type="controlplane.plan.compiled",
        subject=f"plan/{plan.id}",
        data={
            "intent": intent.id,
            "plan": plan.id,
            "tenant": compiled.tenant,
            "canonical_sha256": plan.id,
            "goal": compiled.goal,
            "context": compiled.context,
            "steps": [s.as_dict() for s in compiled.steps],
        },
        **common,
    )
    execution_start(intent=intent, plan=plan, principal=principal, at=at)


def execution_start(*, intent: Intent, plan: Plan, principal: Principal, at: datetime) -> Execution:
    """Verify every step of a compiled plan with policy and start its execution (inside `intent_submit`).

    Each step gets its recorded verdict on `plan.verified`; a denied step is blocked, one that needs
    consent waits for an approval request, the others are cleared and the ready ones dispatched.
    """
    environment = settings.CONTROLPLANE_ENV
    profile = active_profile(environment=environment)
    execution = _execution_create(intent=intent, plan=plan, environment=environment, profile=profile, at=at)
    common = {
        "tenant": intent.tenant.slug,
        "actor": principal.ref,
        "time": at,
        "traceparent": intent.traceparent,
    }
    context = policy_context_build(principal=principal, environment=environment, plan_context=plan.context)
    runs = _step_runs_verify(execution=execution, plan=plan, context=context, profile=profile)
    ledger_append(
        type="controlplane.plan.verified",
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
            "context": policy_context_record(context=context),
            "verdicts": [{"step": run.step.key, **verdict} for run, _, verdict in runs],
        },
        **common,
    )
    ledger_append(
        type="controlplane.execution.started",
        subject=f"execution/{execution.id}",
        data={"execution": execution.id, "intent": intent.id, "plan": plan.id},
        **common,
    )
    for run, decision, verdict in runs:
        # A deny that dev only warns about is not enforced: act on what the tier's mode would give instead.
        acting = verdict_acting(verdict=verdict)
        if acting == PolicyVerdict.DENY:
            step_block(run=run, codes=list(decision.reason_codes), at=at)
        elif acting == PolicyVerdict.REQUIRE_APPROVAL:
            step_approval_await(run=run, principal=principal, decision=decision, at=at)
        else:
            run.clear()
            run.save(update_fields=["status"])
    execution_advance(execution=execution, at=at)
    return execution


def _execution_create(
    *, intent: Intent, plan: Plan, environment: str, profile: PolicyProfile | None, at: datetime
) -> Execution:
    return Execution.objects.create(
        id=sha256_text(f"execution\n{intent.id}"),
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


def _step_runs_verify(
    *, execution: Execution, plan: Plan, context: Context, profile: PolicyProfile | None
) -> list[tuple[StepRun, PolicyDecision, dict[str, Any]]]:
    """A step run per plan step, with its policy decision and the verdict as recorded."""
    content = profile.as_content() if profile else None
    runs = []
    for step in plan.steps.order_by("position"):
        decision = step_decide(step=step, context=context, profile=content)
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
        runs.append((run, decision, verdict_record(decision=decision)))
    return runs
