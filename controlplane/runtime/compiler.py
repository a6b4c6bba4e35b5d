"""Plan compilation: a typed plan draft -> a deterministic step DAG, or a refusal with a reason code.

A pure function of (tenant, draft, contracts): no database, no clock, no randomness. The plan id is the
SHA-256 of the canonical (RFC 8785) compiled plan, and each step's execution key is derived from the plan
id and the step key, so the same draft against the same contracts always yields the same ids and keys.

The tenant is part of the canonical plan (`"tenant": <slug>`), so two tenants' identical drafts get two
plans and two sets of execution keys: a runner shared by both never answers B's step from A's result.
Plans compiled before the tenant was part of the id (no `tenant` in their canonical form) keep their ids;
`tenant=None` compiles in that older form, which replay uses for histories recorded before the change.

Checks, in order (the first failure is the refusal):
1. the draft's shape (a goal, a non-empty list of steps with `key`, `action`, `inputs`, `depends_on`)
2. unique step keys                      -> PLAN_DUPLICATE_STEP
3. every dependency names a step         -> PLAN_UNKNOWN_DEPENDENCY
4. the dependencies form no cycle        -> PLAN_CYCLE
5. every action resolves to a contract   -> PLAN_UNKNOWN_ACTION (or the registry's code: SKILL_NOT_ACTIVE)
6. inputs validate against its schema    -> PLAN_INPUT_INVALID (names the step and the schema error)
7. no more targets than its blast radius -> PLAN_BLAST_RADIUS_EXCEEDED (`skills.limits`)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from skills.limits import blast_radius_exceeded

STEP_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MAX_STEPS = 200

# Contract fields the compiler checks but does not hash into the plan: plans compiled before actions
# carried a blast radius keep their contract hashes (and so their ids) under replay.
UNHASHED = frozenset({"blast_radius"})

# (name, version or None for the newest) -> the contract as plain data, or None when unknown.
ContractResolver = Callable[[str, str | None], Mapping[str, Any] | None]


class PlanRejected(ControlPlaneError):
    """A draft that cannot become a plan; carries the step at fault (if any)."""

    def __init__(self, code: str, detail: str, *, step: str | None = None, path: str | None = None):
        extra = {k: v for k, v in {"step": step, "path": path}.items() if v is not None}
        super().__init__(code, detail, extra=extra)
        self.step = step


@dataclass(frozen=True)
class CompiledStep:
    key: str
    action: str
    action_version: str
    risk_tier: str
    executor: str
    contract_hash: str
    inputs: dict[str, Any]
    depends_on: tuple[str, ...]
    execution_key: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "action": self.action,
            "action_version": self.action_version,
            "risk_tier": self.risk_tier,
            "executor": self.executor,
            "contract_hash": self.contract_hash,
            "inputs": self.inputs,
            "depends_on": list(self.depends_on),
            "execution_key": self.execution_key,
        }


@dataclass(frozen=True)
class CompiledPlan:
    plan_id: str
    goal: str
    context: dict[str, Any]
    steps: tuple[CompiledStep, ...]  # in topological order, ties broken by key
    canonical: bytes = field(repr=False)
    tenant: str | None = None  # None: a plan id of the older form, without the tenant

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "tenant": self.tenant,
            "goal": self.goal,
            "context": self.context,
            "steps": [s.as_dict() for s in self.steps],
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shape(draft: Any) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    if not isinstance(draft, Mapping):
        raise PlanRejected("PLAN_INVALID", "a plan draft is a JSON object")
    goal, context, steps = draft.get("goal"), draft.get("context", {}), draft.get("steps")
    if not isinstance(goal, str) or not goal.strip():
        raise PlanRejected("PLAN_INVALID", "goal must be a non-empty string", path="goal")
    if not isinstance(context, Mapping):
        raise PlanRejected("PLAN_INVALID", "context must be an object", path="context")
    if not isinstance(steps, list) or not steps:
        raise PlanRejected("PLAN_INVALID", "steps must be a non-empty list", path="steps")
    if len(steps) > MAX_STEPS:
        raise PlanRejected("PLAN_INVALID", f"a plan has at most {MAX_STEPS} steps", path="steps")
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if not isinstance(step, Mapping):
            raise PlanRejected("PLAN_INVALID", "a step is an object", path=where)
        key = step.get("key")
        if not isinstance(key, str) or not STEP_KEY.match(key):
            raise PlanRejected("PLAN_INVALID", f"step key must match {STEP_KEY.pattern}", path=f"{where}.key")
        if not isinstance(step.get("action"), str) or not step["action"]:
            raise PlanRejected("PLAN_INVALID", "action must be a string", step=key, path=f"{where}.action")
        if "version" in step and not isinstance(step["version"], str):
            raise PlanRejected("PLAN_INVALID", "version must be a string", step=key, path=f"{where}.version")
        if not isinstance(step.get("inputs", {}), Mapping):
            raise PlanRejected("PLAN_INVALID", "inputs must be an object", step=key, path=f"{where}.inputs")
        depends_on = step.get("depends_on", [])
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            raise PlanRejected(
                "PLAN_INVALID", "depends_on must be a list of step keys", step=key, path=f"{where}.depends_on"
            )
    return goal.strip(), dict(context), [dict(s) for s in steps]


def _topological_order(steps: dict[str, list[str]]) -> list[str]:
    """Kahn's algorithm, always taking the smallest ready key, so the order is deterministic."""
    remaining = {key: set(deps) for key, deps in steps.items()}
    order: list[str] = []
    while remaining:
        ready = sorted(key for key, deps in remaining.items() if not deps)
        if not ready:
            cycle = sorted(remaining)
            raise PlanRejected("PLAN_CYCLE", f"steps {', '.join(cycle)} depend on each other", step=cycle[0])
        key = ready[0]
        order.append(key)
        del remaining[key]
        for deps in remaining.values():
            deps.discard(key)
    return order


def plan_canonical_body(
    *, tenant: str | None, goal: str, context: Mapping[str, Any], steps: list[dict[str, Any]]
) -> dict[str, Any]:
    """The object whose canonical bytes are hashed into the plan id (the tenant only when given)."""
    body: dict[str, Any] = {"goal": goal, "context": dict(context), "steps": steps}
    if tenant is not None:
        body["tenant"] = tenant
    return body


def plan_compile(*, draft: Any, resolve: ContractResolver, tenant: str | None) -> CompiledPlan:
    """Compile a draft into a plan, or raise `PlanRejected` with the reason code and the step at fault.

    `tenant` is the slug of the tenant the plan is compiled for; it goes into the plan id (and so into
    every execution key). Pass None only to recompile a plan recorded before ids carried the tenant."""
    goal, context, raw_steps = _shape(draft)
    seen: set[str] = set()
    for step in raw_steps:
        if step["key"] in seen:
            raise PlanRejected(
                "PLAN_DUPLICATE_STEP", f"step key {step['key']!r} is used twice", step=step["key"]
            )
        seen.add(step["key"])
    by_key = {step["key"]: step for step in raw_steps}
    for step in raw_steps:
        for dependency in step.get("depends_on", []):
            if dependency not in by_key:
                raise PlanRejected(
                    "PLAN_UNKNOWN_DEPENDENCY",
                    f"step {step['key']!r} depends on unknown step {dependency!r}",
                    step=step["key"],
                )
    order = _topological_order({key: list(step.get("depends_on", [])) for key, step in by_key.items()})
    resolved: dict[str, Mapping[str, Any]] = {}
    for key in order:
        step = by_key[key]
        try:  # the skills registry refuses an action whose skill is not installed and verified
            contract = resolve(step["action"], step.get("version"))
        except ControlPlaneError as refusal:
            raise PlanRejected(refusal.code, refusal.detail, step=key) from refusal
        if contract is None:
            wanted = step["action"] + (f"@{step['version']}" if step.get("version") else "")
            raise PlanRejected("PLAN_UNKNOWN_ACTION", f"no installed action {wanted}", step=key)
        errors = sorted(
            Draft202012Validator(contract["input_schema"]).iter_errors(step.get("inputs", {})), key=str
        )
        if errors:
            error = errors[0]
            path = "inputs" + "".join(
                f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
            )
            raise PlanRejected("PLAN_INPUT_INVALID", f"step {key!r}: {error.message}", step=key, path=path)
        if exceeded := blast_radius_exceeded(contract.get("blast_radius"), step.get("inputs", {})):
            target = (contract.get("blast_radius") or {}).get("target_input")
            raise PlanRejected(
                "PLAN_BLAST_RADIUS_EXCEEDED", f"step {key!r} {exceeded}", step=key, path=f"inputs.{target}"
            )
        resolved[key] = contract
    body_steps = [
        {
            "key": key,
            "action": resolved[key]["name"],
            "action_version": resolved[key]["version"],
            "contract_hash": _sha256(
                canonical_bytes({k: v for k, v in resolved[key].items() if k not in UNHASHED})
            ),
            "inputs": dict(by_key[key].get("inputs", {})),
            "depends_on": sorted(set(by_key[key].get("depends_on", []))),
        }
        for key in order
    ]
    body = plan_canonical_body(tenant=tenant, goal=goal, context=context, steps=body_steps)
    canonical = canonical_bytes(body)
    plan_id = _sha256(canonical)
    steps = tuple(
        CompiledStep(
            key=s["key"],
            action=s["action"],
            action_version=s["action_version"],
            risk_tier=resolved[s["key"]]["risk_tier"],
            executor=resolved[s["key"]]["executor"],
            contract_hash=s["contract_hash"],
            inputs=s["inputs"],
            depends_on=tuple(s["depends_on"]),
            execution_key=_sha256(f"{plan_id}:{s['key']}".encode())[:32],
        )
        for s in body_steps
    )
    return CompiledPlan(
        plan_id=plan_id, goal=goal, context=context, steps=steps, canonical=canonical, tenant=tenant
    )
