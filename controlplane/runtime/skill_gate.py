"""The skills gates: a cleared step of an action whose skill may not run now is held at dispatch.

Both ask the skills registry (`skills.selectors.action_dispatch_refusal`), so the runtime knows only the
answer's code:

- `skill-disabled` holds the steps of a disabled skill (SKILL_DISABLED) and resumes them by itself once the
  skill is enabled again (the sweeper re-checks auto-resuming gates): disabling holds, it loses nothing;
- `skill-untrusted` holds a step whose skill was quarantined for a revoked key (SKILL_KEY_REVOKED), is no
  longer installed and verified (SKILL_NOT_ACTIVE), or whose installed manifest no longer hashes to the one
  its install ledgered (SKILL_MANIFEST_CHANGED); `fail_after` is zero, so the sweeper blocks it with that
  code at its next pass: what a revoked key signed never runs, and nobody has to notice for that.
"""

from __future__ import annotations

from datetime import timedelta

from controlplane.runtime.gates import DispatchGate, Hold, register_dispatch_gate
from controlplane.runtime.models import StepRun
from skills.selectors import action_dispatch_refusal


def _refusal(run: StepRun) -> tuple[str, str] | None:
    return action_dispatch_refusal(name=run.step.action, version=run.step.action_version)


def _disabled(run: StepRun) -> Hold | None:
    refusal = _refusal(run)
    if refusal is not None and refusal[0] == "SKILL_DISABLED":
        return Hold(code=refusal[0], detail=refusal[1], data={"action": run.step.action})
    return None


def _untrusted(run: StepRun) -> Hold | None:
    refusal = _refusal(run)
    if refusal is not None and refusal[0] != "SKILL_DISABLED":
        return Hold(code=refusal[0], detail=refusal[1], data={"action": run.step.action})
    return None


SKILL_DISABLED_GATE = DispatchGate(name="skill-disabled", check=_disabled, auto_resume=True)
SKILL_UNTRUSTED_GATE = DispatchGate(
    name="skill-untrusted", check=_untrusted, auto_resume=False, fail_after=lambda: timedelta(0)
)
SKILL_GATES = (SKILL_DISABLED_GATE, SKILL_UNTRUSTED_GATE)


def register_skill_gates() -> None:
    """Called from the runtime's `ready()`."""
    for gate in SKILL_GATES:
        register_dispatch_gate(gate)
