"""Dispatch gates: what may hold a cleared step before it goes to a worker.

A step whose verdict and approval are satisfied is dispatched unless a gate holds it. A gate is a function
of the step run that returns a `Hold` (a reason code and words for the operator) or None. Apps above the
runtime register theirs from `AppConfig.ready()` (the plugins app holds a step whose runner or executor a
plugin provides while that plugin is not healthy, `PLUGIN_UNHEALTHY`); the runtime knows no gate by name.

A held step is not failed: the execution stays running, the step shows `held` with its code, and it goes
on when the hold clears:

- a gate with `auto_resume` is re-checked by the sweeper (and by whoever clears the condition, through
  `controlplane.runtime.services.steps_resume_held`); a step it no longer holds is dispatched;
- a gate without it (a person's act, such as releasing a kill switch) resumes nothing by itself: only an
  explicit, ledgered resume does ("automation never surprises humans");
- a gate's `fail_after` bounds the wait: a step held longer is blocked with the hold's code.

Gates are checked in registration order (the runtime's kill switch gate, `killswitch`, is put first); the
first that holds wins. Checks run inside the dispatching transaction, so they must be cheap reads (no
network).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controlplane.runtime.models import StepRun


@dataclass(frozen=True)
class Hold:
    code: str  # a reason code from the catalogue
    detail: str  # what the operator reads: "waiting for plugin runner-eu (crashed)"
    data: dict[str, Any] = field(default_factory=dict)  # recorded with the held event (JSON)


@dataclass(frozen=True)
class DispatchGate:
    name: str
    check: Callable[[StepRun], Hold | None]
    auto_resume: bool = True
    # How long a step may stay held by this gate before it is blocked with the hold's code (None: no limit).
    fail_after: Callable[[], timedelta | None] = lambda: None


_GATES: dict[str, DispatchGate] = {}


def register_dispatch_gate(gate: DispatchGate, *, first: bool = False) -> None:
    """Add a gate; `first` puts it before every gate registered so far (the kill switch: it always wins)."""
    existing = _GATES.get(gate.name)
    if existing is not None and existing != gate:
        raise ValueError(f"dispatch gate {gate.name!r} is registered twice")
    if first and existing is None:
        others = list(_GATES.items())
        _GATES.clear()
        _GATES[gate.name] = gate
        _GATES.update(others)
        return
    _GATES[gate.name] = gate


def dispatch_gates() -> list[DispatchGate]:
    return list(_GATES.values())


def dispatch_gate(name: str) -> DispatchGate | None:
    return _GATES.get(name)


def dispatch_hold(run: StepRun) -> tuple[DispatchGate, Hold] | None:
    """The first gate holding this step, with its hold; None when every gate lets it go."""
    for gate in _GATES.values():
        hold = gate.check(run)
        if hold is not None:
            return gate, hold
    return None
