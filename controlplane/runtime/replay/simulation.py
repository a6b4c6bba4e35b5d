"""`replay --against-profile`: the recorded steps evaluated under another profile (a what-if, like OPA's
or Cedar's policy simulation). Reads the ledger and the profile; writes nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy.evaluation import ProfileContent, evaluate
from controlplane.policy.models import PolicyVerdict
from controlplane.policy.selectors import profile_get
from controlplane.runtime.replay.fold import fold, recorded_facts, runtime_events
from controlplane.runtime.verdicts import policy_context_from_record, verdict_acting, verdict_record


@dataclass
class VerdictChange:
    execution: str
    step: str
    action: str
    recorded: dict[str, Any]
    simulated: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution": self.execution,
            "step": self.step,
            "action": self.action,
            "recorded": self.recorded,
            "simulated": self.simulated,
        }


@dataclass
class Simulation:
    """Which recorded verdicts would change under another profile, and the reason codes involved."""

    profile: dict[str, Any]
    executions: int = 0
    steps: int = 0
    changes: list[VerdictChange] = field(default_factory=list)
    transitions: Counter = field(default_factory=Counter)
    recorded_codes: Counter = field(default_factory=Counter)
    simulated_codes: Counter = field(default_factory=Counter)
    changed_codes: Counter = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)

    def by_reason_code(self) -> dict[str, dict[str, int]]:
        codes = sorted(set(self.recorded_codes) | set(self.simulated_codes))
        return {
            code: {
                "recorded": self.recorded_codes[code],
                "simulated": self.simulated_codes[code],
                "in_changed_verdicts": self.changed_codes[code],
            }
            for code in codes
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "executions": self.executions,
            "steps": self.steps,
            "changed": len(self.changes),
            "transitions": dict(sorted(self.transitions.items())),
            "by_reason_code": self.by_reason_code(),
            "changes": [c.as_dict() for c in self.changes],
            "skipped": self.skipped,
        }


def outcome_label(verdict: dict[str, Any]) -> str:
    acting = verdict_acting(verdict=verdict)
    return f"{acting}({verdict['quorum']})" if acting == PolicyVerdict.REQUIRE_APPROVAL else acting


def simulate_profile(*, name: str, version: int | None = None, execution_id: str | None = None) -> Simulation:
    """Evaluate every recorded step again under profile `name` (version, or the newest) and report what
    would change: the verdict the runtime would act on, or the quorum it would demand.

    Pure with respect to the product: reads the ledger and the profile, writes nothing. The recorded
    context (environment, principal, labels) is kept, so a prod profile simulated over dev executions
    enforces its denies (dev's warn-only mode needs both the context and the profile to be dev).
    """
    row = profile_get(name=name, version=version)
    profile: ProfileContent = row.as_content()
    simulation = Simulation(profile=profile.ref.as_dict())
    ledger = fold(runtime_events())
    if execution_id is not None and execution_id not in ledger.executions:
        raise ControlPlaneError("NOT_FOUND", f"no execution {execution_id} in the ledger")
    for execution in sorted(ledger.executions.values(), key=lambda e: e.seq):
        if execution_id is not None and execution.id != execution_id:
            continue
        if execution.context is None:
            simulation.skipped.append(execution.id)
            continue
        simulation.executions += 1
        context = policy_context_from_record(recorded=execution.context)
        plan = ledger.plans[execution.plan]
        for key, facts in recorded_facts(plan).items():
            recorded = execution.steps[key].verdict
            simulated = verdict_record(decision=evaluate(step=facts, context=context, profile=profile))
            simulation.steps += 1
            simulation.recorded_codes.update(recorded.get("reason_codes", []))
            simulation.simulated_codes.update(simulated["reason_codes"])
            before, after = outcome_label(recorded), outcome_label(simulated)
            if before != after:
                simulation.transitions[f"{before} -> {after}"] += 1
                simulation.changed_codes.update(simulated["reason_codes"])
                keep = ("verdict", "enforced", "effective_verdict", "tier", "quorum", "reason_codes")
                simulation.changes.append(
                    VerdictChange(
                        execution=execution.id,
                        step=key,
                        action=facts.action,
                        recorded={k: recorded.get(k) for k in keep},
                        simulated={k: simulated[k] for k in keep},
                    )
                )
    return simulation
