"""The policy verdict of a step as the runtime records it on `plan.verified`, and as replay reads it back.

One shape, built here and nowhere else: the services write `verdict_record(...)` (and the context it was
given under, `policy_context_record(...)`) into the ledger; replay's fold and verification compare
against the same functions, so the recorded verdict and the rebuilt one cannot drift apart field by field.
Pure: no database, no clock.
"""

from __future__ import annotations

from typing import Any

from controlplane.identity.models import Principal
from controlplane.policy.evaluation import Context, PolicyDecision, ProfileContent, StepFacts, evaluate
from controlplane.runtime.models import PlanStep


def policy_context_build(*, principal: Principal, environment: str, plan_context: dict) -> Context:
    """Who asks and where, as policy sees it; recorded on `plan.verified` so replay re-evaluates with it."""
    labels = {k: str(v) for k, v in plan_context.items() if isinstance(v, str | int | bool)}
    return Context(
        environment=environment,
        principal_kind=principal.kind,
        principal=principal.ref,
        tenant=principal.tenant.slug,
        labels=labels,
    )


def policy_context_record(*, context: Context) -> dict[str, Any]:
    """The policy context as `plan.verified` records it."""
    return {
        "environment": context.environment,
        "principal_kind": str(context.principal_kind),
        "principal": context.principal,
        "tenant": context.tenant,
        "labels": dict(context.labels),
    }


def policy_context_from_record(*, recorded: dict[str, Any]) -> Context:
    """The policy context again, from what `plan.verified` recorded."""
    return Context(**{**recorded, "labels": dict(recorded.get("labels", {}))})


def step_decide(*, step: PlanStep, context: Context, profile: ProfileContent | None) -> PolicyDecision:
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


def verdict_record(*, decision: PolicyDecision) -> dict[str, Any]:
    """A step's verdict as `plan.verified` records it (the entry also names its step)."""
    return {
        "verdict": decision.verdict,
        "enforced": decision.enforced,
        "effective_verdict": decision.effective_verdict,
        "tier": decision.tier,
        "quorum": decision.quorum,
        "decision_hash": decision.decision_hash,
        "reason_codes": list(decision.reason_codes),
    }


def escalation_ladder(*, decision: PolicyDecision) -> list[dict[str, int]]:
    """The escalation ladder a step's approval request is opened with (replay expects the same)."""
    return [{"after_seconds": e.after_seconds, "level": e.level} for e in decision.escalation]


def verdict_acting(*, verdict: dict[str, Any]) -> str:
    """What the runtime acts on, from a recorded verdict: the verdict itself, or the effective one when
    dev only warned about a deny (`enforced` false)."""
    return verdict["verdict"] if verdict["enforced"] else verdict.get("effective_verdict", verdict["verdict"])
