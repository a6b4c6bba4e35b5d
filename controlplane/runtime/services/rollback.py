"""Rolling back a completed step: its action's compensating action, run as a governed step of its own.

`step_rollback` reads the undone step's contract (skills: `compensating_action`, declared by the manifest),
maps its inputs and outcome into the compensating action's inputs (`skills.limits.compensating_inputs`),
and submits a one-step intent for the person asking, through `intent_submit` like any client: compiled
against the registry (SKILL_NOT_ACTIVE, PLAN_BLAST_RADIUS_EXCEEDED apply), a policy verdict, an approval
when its tier needs one, the kill switch and the dispatch gates, ledgered. It joins the undone execution's
trace (same trace id), its plan context names what it undoes (`rollback_of_execution`, `rollback_of_step`),
and `controlplane.execution.step.rollback_requested` on the undone execution links the two.

A step is rolled back once: asking again returns the rollback already submitted.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.kernel.contracts import HEX64, TEXT, event_contract, obj
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from controlplane.runtime.models import Execution, Intent, StepRun, StepStatus
from controlplane.runtime.services.intents import intent_submit
from skills.limits import compensating_inputs
from skills.selectors import action_compensation

ROLLBACK_STEP = "rollback"


def _existing(execution: Execution, step_key: str) -> Intent | None:
    return (
        Intent.objects.filter(
            tenant=execution.tenant,
            draft__context__rollback_of_execution=execution.id,
            draft__context__rollback_of_step=step_key,
        )
        .order_by("received_at")
        .first()
    )


def step_rollback(*, execution: Execution, step_key: str, actor: Principal, reason: str) -> Intent:
    """Undo a completed step of `execution` with its action's compensating action (see the module).

    Refusals, each writing nothing: another tenant's execution (NOT_FOUND), no such step
    (ROLLBACK_STEP_UNKNOWN), a step not completed (ROLLBACK_STEP_NOT_COMPLETED), an action that declares no
    compensating action (ROLLBACK_NOT_REVERSIBLE), an input mapping naming what the step does not have
    (ROLLBACK_INPUT_UNMAPPED), no reason (VALIDATION_FAILED)."""
    if actor.tenant_id != execution.tenant_id:
        raise ControlPlaneError("NOT_FOUND", "no such execution in your tenant")
    if not (reason or "").strip():
        raise ControlPlaneError("VALIDATION_FAILED", "a rollback needs a reason")
    run = StepRun.objects.filter(execution=execution, step__key=step_key).select_related("step").first()
    if run is None:
        raise ControlPlaneError("ROLLBACK_STEP_UNKNOWN", f"execution {execution.id} has no step {step_key!r}")
    if run.status != StepStatus.COMPLETED:
        raise ControlPlaneError(
            "ROLLBACK_STEP_NOT_COMPLETED",
            f"step {step_key!r} is {run.status}; only a completed step is undone",
        )
    existing = _existing(execution, step_key)
    if existing is not None:
        return existing
    step = run.step
    compensation = action_compensation(name=step.action, version=step.action_version)
    if compensation is None:
        raise ControlPlaneError(
            "ROLLBACK_NOT_REVERSIBLE", f"{step.action}@{step.action_version} declares no compensating action"
        )
    try:
        inputs = compensating_inputs(
            compensation.get("input_mapping", {}), inputs=step.inputs, outcome=run.outcome or {}
        )
    except KeyError as missing:
        raise ControlPlaneError(
            "ROLLBACK_INPUT_UNMAPPED", f"the compensating input mapping names {missing.args[0]!r}, not found"
        ) from None
    draft_step: dict[str, Any] = {"key": ROLLBACK_STEP, "action": compensation["action"], "inputs": inputs}
    if compensation.get("version"):
        draft_step["version"] = compensation["version"]
    draft = {
        "goal": f"roll back step {step_key} of execution {execution.id[:12]}: {reason.strip()}"[:500],
        "context": {"rollback_of_execution": execution.id, "rollback_of_step": step_key},
        "steps": [draft_step],
    }
    at = timezone.now()
    with transaction.atomic():
        intent = intent_submit(
            principal=actor,
            draft=draft,
            idempotency_key=f"rollback/{execution.id}/{step_key}",
            traceparent=execution.traceparent,
            at=at,
        )
        ledger_append(
            type="controlplane.execution.step.rollback_requested",
            subject=f"execution/{execution.id}",
            data={
                "execution": execution.id,
                "step": step_key,
                "execution_key": step.execution_key,
                "compensating_action": compensation["action"],
                "rollback_intent": intent.id,
                "rollback_status": intent.status,
                "reason": reason.strip(),
            },
            tenant=execution.tenant.slug,
            actor=actor.ref,
            time=at,
            traceparent=execution.traceparent,
            reason_codes=[intent.rejection["code"]] if intent.rejection else [],
        )
    return intent


ROLLBACK_CONTRACTS = [
    event_contract(
        "execution.step.rollback_requested",
        "controlplane.runtime",
        "A person asked to undo a completed step: its compensating action was submitted as an intent of its "
        "own (`rollback_intent`, in the same trace). Subject `execution/<id>` of the undone step.",
        obj(
            {
                "execution": HEX64,
                "step": {"type": "string"},
                "execution_key": {"type": "string"},
                "compensating_action": {"type": "string"},
                "rollback_intent": HEX64,
                "rollback_status": {"type": "string"},
                "reason": TEXT,
            }
        ),
        "controlplane.runtime.services.rollback.step_rollback",
    ),
]
