"""The fold: the action flow's ledger events -> the state every projection row should have (pure).

Steps move as the services move them: `plan.verified` creates the execution with its steps pending;
`execution.started` clears the steps policy allows; an opened `runtime.step` approval request (matched
to its step by the content hash it is bound to) makes a step wait, its consumption clears it; `step.*`
events start, complete, fail or block it; `step.retry_scheduled` and `step.requeued` (a retryable
failure, a lost worker) put a running step back in the queue. A blocked or failed step cancels every
step still open at that moment, as `execution_advance` does; `execution.cancelled` cancels the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q

from controlplane.ledger.models import LedgerEvent
from controlplane.policy.evaluation import StepFacts
from controlplane.policy.models import PolicyVerdict
from controlplane.runtime.models import PlanStep, StepRun, StepStatus
from controlplane.runtime.selectors import killswitch_covers
from controlplane.runtime.services import APPROVAL_SUBJECT, step_content_hash
from controlplane.runtime.verdicts import verdict_acting

PREFIXES = (
    "controlplane.intent.",
    "controlplane.plan.",
    "controlplane.execution.",
    "controlplane.approval.request.",
    "controlplane.killswitch.",
    "controlplane.runner.",
)
# The one identity event the fold reads: the kind a principal was created with (replay judges approvers
# by it: only people approve).
PRINCIPAL_CREATED = "controlplane.identity.principal.created"
_OPEN = (
    StepStatus.PENDING.value,
    StepStatus.WAITING_APPROVAL.value,
    StepStatus.READY.value,
    StepStatus.HELD.value,
)


def iso(moment: datetime) -> str:
    """A time as the worker writes it into a step's attempt log."""
    return moment.isoformat().replace("+00:00", "Z")


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


# --- the fold: events -> state -------------------------------------------------------------------------


@dataclass
class IntentState:
    id: str
    seq: int
    tenant: str
    actor: str
    idempotency_key: str | None
    draft: Any
    draft_hash: str
    traceparent: str
    trace_id: str
    received_at: datetime
    status: str = ""
    rejection: dict[str, Any] = field(default_factory=dict)
    contracts: list[dict[str, Any]] = field(default_factory=list)
    plan: str | None = None


@dataclass
class PlanState:
    id: str
    seq: int
    goal: Any
    context: Any
    steps: list[dict[str, Any]]
    compiled_at: datetime
    tenant: str | None = None  # in the plan id since tenant-scoped ids; None for older plans


@dataclass
class StepState:
    key: str
    verdict: dict[str, Any]
    status: str = StepStatus.PENDING.value
    approval: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    reason_codes: list[str] = field(default_factory=list)
    attempt_log: list[dict[str, Any]] = field(default_factory=list)

    def attempt_ended(self, at: datetime, **how: Any) -> None:
        """Close the current attempt's entry (as the worker or the sweeper does)."""
        if self.attempt_log:
            self.attempt_log[-1] = {**self.attempt_log[-1], "finished_at": iso(at), **how}


@dataclass
class ExecutionState:
    id: str
    seq: int
    plan: str
    tenant: str
    actor: str
    traceparent: str
    trace_id: str
    environment: str
    profile: dict[str, Any]
    context: dict[str, Any] | None
    steps: dict[str, StepState]
    started_at: datetime
    intent: str | None = None
    status: str = "running"
    finished_at: datetime | None = None
    reason_codes: list[str] = field(default_factory=list)
    first_failure_at: datetime | None = None
    completed_outcomes: dict[str, Any] | None = None


@dataclass
class ApprovalState:
    id: str
    seq: int
    tenant: str
    subject_kind: str
    subject_id: str
    content_hash: str
    quorum: int
    risk_tier: str
    requested_by: str
    reason_codes: list[str]
    created_at: datetime
    status: str = "pending"
    escalation_level: int = 0
    decided_at: datetime | None = None
    consumed_at: datetime | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    step: tuple[str, str] | None = None  # (execution id, step key) for runtime.step requests
    # Every later event of the request as the ledger recorded it (seq, verb, time, actor, data), in seq
    # order: replay re-takes the approval from these (replay/decisions.py).
    events: list[RequestEvent] = field(default_factory=list)


@dataclass(frozen=True)
class RequestEvent:
    """One recorded event of an approval request after it was opened."""

    seq: int
    verb: str
    at: datetime
    actor: str
    data: dict[str, Any]


@dataclass(frozen=True)
class StepStart:
    """A recorded `execution.step.started` and what held at that seq: the kill switch covering the step
    (None when none was engaged) and, for a step that needed people, its request and whether it had been
    consumed (granted and used) by then."""

    execution: str
    step: str
    seq: int
    attempt: int
    execution_key: str | None
    acting: str
    verdict: dict[str, Any]
    switch: KillSwitchState | None
    request: str | None
    consumed: bool


@dataclass
class RunnerState:
    name: str
    url: str
    secret_env: str
    timeout_seconds: int | None
    enabled: bool
    changed_by: str
    changed_at: datetime
    tenant: str = ""  # the owning tenant's slug; empty for a shared runner
    grants: set[str] = field(default_factory=set)  # tenants a shared runner is granted to


@dataclass
class KillSwitchState:
    scope: str
    target: str
    engaged: bool
    reason: str
    changed_by: str
    changed_at: datetime


@dataclass
class Ledger:
    """Everything the fold rebuilt, plus what the events themselves contradict (`anomalies`)."""

    intents: dict[str, IntentState] = field(default_factory=dict)
    plans: dict[str, PlanState] = field(default_factory=dict)
    plan_events: dict[str, PlanState] = field(default_factory=dict)  # intent id -> its plan.compiled
    executions: dict[str, ExecutionState] = field(default_factory=dict)
    approvals: dict[str, ApprovalState] = field(default_factory=dict)
    killswitches: dict[tuple[str, str], KillSwitchState] = field(default_factory=dict)
    runners: dict[str, RunnerState] = field(default_factory=dict)
    anomalies: list[tuple[str, str, Any, Any, int]] = field(default_factory=list)
    awaiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # content hash -> (execution, step)
    step_requests: dict[tuple[str, str], ApprovalState] = field(default_factory=dict)  # (execution, step) ->
    principal_kinds: dict[str, str] = field(default_factory=dict)  # ref -> kind, as identity recorded it
    starts: list[StepStart] = field(default_factory=list)

    def anomaly(self, subject: str, name: str, recorded: Any, rebuilt: Any, seq: int) -> None:
        self.anomalies.append((subject, name, recorded, rebuilt, seq))


def runtime_events() -> Iterator[LedgerEvent]:
    """The ledger events of the action flow, in seq order."""
    query = Q(type=PRINCIPAL_CREATED)
    for prefix in PREFIXES:
        query |= Q(type__startswith=prefix)
    return (
        LedgerEvent.objects.filter(query)
        .only(
            "seq",
            "type",
            "subject",
            "time",
            "tenant",
            "actor",
            "traceparent",
            "trace_id",
            "reason_codes",
            "data",
        )
        .order_by("seq")
        .iterator(chunk_size=2000)
    )


def _step_hash_for(plan: PlanState, execution: ExecutionState, key: str) -> str:
    """The content hash an approval of this step is bound to, computed from ledger data alone."""
    recorded = next(s for s in plan.steps if s["key"] == key)
    step = PlanStep(
        plan_id=plan.id,
        key=key,
        action=recorded["action"],
        action_version=recorded["action_version"],
        inputs=recorded["inputs"],
        execution_key=recorded["execution_key"],
    )
    run = StepRun(
        execution_id=execution.id, step=step, decision_hash=execution.steps[key].verdict["decision_hash"]
    )
    return step_content_hash(run=run)


def _cancel_open_steps(execution: ExecutionState, at: datetime | None) -> None:
    for step in execution.steps.values():
        if step.status in _OPEN:
            step.status, step.finished_at = StepStatus.CANCELLED.value, at


def fold(events: Iterable[LedgerEvent]) -> Ledger:
    """Rebuild the state of the action flow from its events (pure: no database reads)."""
    ledger = Ledger()
    for event in events:
        try:
            _apply(ledger, event)
        except (KeyError, TypeError, AttributeError) as exc:  # a payload or order the fold cannot follow
            ledger.anomaly(event.subject, "event", event.type, f"cannot be folded: {exc!r}", event.seq)
    for execution in ledger.executions.values():
        # A blocked or failed step cancels every step still open, at the moment it happened.
        if execution.first_failure_at is not None:
            _cancel_open_steps(execution, execution.first_failure_at)
    return ledger


def _apply(ledger: Ledger, event: LedgerEvent) -> None:
    kind, data, at, seq = event.type.removeprefix("controlplane."), event.data, event.time, event.seq
    if event.type == PRINCIPAL_CREATED:
        ledger.principal_kinds[data["principal"]] = data["kind"]
    elif kind == "intent.received":
        ledger.intents[data["intent"]] = IntentState(
            id=data["intent"],
            seq=seq,
            tenant=event.tenant,
            actor=event.actor,
            idempotency_key=data.get("idempotency_key"),
            draft=data["draft"],
            draft_hash=data["draft_hash"],
            traceparent=event.traceparent,
            trace_id=event.trace_id,
            received_at=at,
        )
    elif kind == "plan.rejected":
        intent = ledger.intents[data["intent"]]
        intent.status = "rejected"
        intent.rejection = {k: v for k, v in data.items() if k not in ("intent", "contracts")}
        intent.contracts = data.get("contracts", [])
    elif kind == "plan.compiled":
        plan = PlanState(
            data["plan"], seq, data.get("goal"), data.get("context"), data["steps"], at, data.get("tenant")
        )
        ledger.plans.setdefault(plan.id, plan)
        ledger.plan_events[data["intent"]] = plan
        intent = ledger.intents[data["intent"]]
        intent.status, intent.plan = "compiled", plan.id
    elif kind == "plan.verified":
        plan = ledger.plans[data["plan"]]
        verdicts = {v["step"]: v for v in data["verdicts"]}
        execution = ExecutionState(
            id=data["execution"],
            seq=seq,
            plan=plan.id,
            tenant=event.tenant,
            actor=event.actor,
            traceparent=event.traceparent,
            trace_id=event.trace_id,
            environment=data["environment"],
            profile=data["profile"],
            context=data.get("context"),
            steps={s["key"]: StepState(s["key"], verdicts.get(s["key"], {})) for s in plan.steps},
            started_at=at,
        )
        ledger.executions[execution.id] = execution
        for key, step in execution.steps.items():
            if step.verdict and verdict_acting(verdict=step.verdict) == PolicyVerdict.REQUIRE_APPROVAL:
                ledger.awaiting[_step_hash_for(plan, execution, key)] = (execution.id, key)
    elif kind.startswith("execution."):
        _apply_execution(ledger, kind, event)
    elif kind.startswith("approval.request."):
        _apply_approval(ledger, kind.removeprefix("approval.request."), event)
    elif kind in ("killswitch.engaged", "killswitch.released"):
        ledger.killswitches[(data["scope"], data["target"])] = KillSwitchState(
            data["scope"], data["target"], kind == "killswitch.engaged", data["reason"], event.actor, at
        )
    elif kind == "runner.registered":
        before = ledger.runners.get(data["name"])
        ledger.runners[data["name"]] = RunnerState(
            data["name"],
            data["url"],
            data["secret_env"],
            data["timeout_seconds"],
            True,
            event.actor,
            at,
            data.get("tenant", ""),
            before.grants if before else set(),
        )
    elif kind == "runner.granted":
        ledger.runners[data["name"]].grants.add(data["tenant"])
    elif kind == "runner.grant_revoked":
        ledger.runners[data["name"]].grants.discard(data["tenant"])
    elif kind == "runner.disabled":
        runner = ledger.runners[data["name"]]
        runner.enabled, runner.changed_by, runner.changed_at = False, event.actor, at
    else:
        ledger.anomaly(event.subject, "event", event.type, "an event type replay does not know", seq)


def _apply_execution(ledger: Ledger, kind: str, event: LedgerEvent) -> None:
    data, at, seq = event.data, event.time, event.seq
    execution = ledger.executions.get(data["execution"])
    if execution is None:
        ledger.anomaly(event.subject, "event", event.type, "no plan.verified before it", seq)
        return
    step = execution.steps.get(data.get("step", ""))
    if kind == "execution.started":
        execution.intent = data["intent"]
        for candidate in execution.steps.values():
            if candidate.verdict and verdict_acting(verdict=candidate.verdict) == PolicyVerdict.ALLOW:
                candidate.status = StepStatus.READY.value
    elif kind.startswith("execution.step.") and step is None:
        ledger.anomaly(event.subject, "event", event.type, f"no step {data.get('step')!r} in the plan", seq)
    elif kind == "execution.step.blocked":
        step.status, step.finished_at = StepStatus.BLOCKED.value, at
        step.reason_codes = list(dict.fromkeys([*step.reason_codes, *event.reason_codes]))
        execution.first_failure_at = execution.first_failure_at or at
    elif kind == "execution.step.held":  # a dispatch gate holds the cleared step (controlplane.runtime.gates)
        step.status = StepStatus.HELD.value
    elif kind == "execution.step.resumed":
        step.status = StepStatus.READY.value
    elif kind == "execution.step.started":
        ledger.starts.append(_step_start(ledger, execution, step, event))
        step.status, step.attempts, step.started_at = StepStatus.RUNNING.value, data["attempt"], at
        step.attempt_log.append({"attempt": data["attempt"], "started_at": iso(at)})
    elif kind == "execution.step.completed":
        step.status, step.outcome, step.finished_at = StepStatus.COMPLETED.value, data["outcome"], at
        step.attempt_ended(at, result="completed")
    elif kind == "execution.step.failed":
        was_running = step.status == StepStatus.RUNNING.value
        step.status, step.finished_at = StepStatus.FAILED.value, at
        error = data["error"]
        if was_running and isinstance(error, dict) and error.get("code") != "STEP_LEASE_EXPIRED":
            step.attempt_ended(
                at, result="failed", code=error["code"], retryable=error["retryable"], detail=error["detail"]
            )
        elif was_running:  # the sweeper found the worker gone on the last attempt
            step.attempt_ended(at, result="lost", code="STEP_LEASE_EXPIRED")
        step.outcome = {"error": error}
        step.reason_codes = list(dict.fromkeys([*step.reason_codes, *event.reason_codes]))
        execution.first_failure_at = execution.first_failure_at or at
    elif kind == "execution.step.retry_scheduled":  # a retryable failure: back to the queue, later
        error = data["error"]
        step.status = StepStatus.READY.value
        step.attempt_ended(at, result="retry", code=error["code"], retryable=True, detail=error["detail"])
    elif kind == "execution.step.requeued":  # the worker died (its lease expired): back to the queue
        step.status = StepStatus.READY.value
        step.attempt_ended(at, result="lost", code="STEP_LEASE_EXPIRED")
    elif kind == "execution.completed":
        execution.status, execution.finished_at = "completed", at
        execution.completed_outcomes = data.get("outcomes")
    elif kind == "execution.failed":
        execution.status, execution.finished_at = "failed", at
        execution.reason_codes = list(event.reason_codes)
    elif kind == "execution.cancelled":
        if execution.first_failure_at is not None:
            _cancel_open_steps(execution, execution.first_failure_at)
        _cancel_open_steps(execution, at)
        execution.status, execution.finished_at = "cancelled", at
    elif kind == "execution.step.rollback_requested":
        pass  # a link to the rollback's own intent (services/rollback.py); the undone step keeps its state
    else:
        ledger.anomaly(event.subject, "event", event.type, "an event type replay does not know", seq)


def _step_start(ledger: Ledger, execution: ExecutionState, step: StepState, event: LedgerEvent) -> StepStart:
    """What held when the step started: the switch covering it (events before this seq), its approval."""
    action = next(s["action"] for s in ledger.plans[execution.plan].steps if s["key"] == step.key)
    switch = next(
        (
            s
            for s in sorted(ledger.killswitches.values(), key=lambda s: (s.scope, s.target))
            if s.engaged
            and killswitch_covers(scope=s.scope, target=s.target, tenant=execution.tenant, action=action)
        ),
        None,
    )
    request = ledger.step_requests.get((execution.id, step.key))
    return StepStart(
        execution=execution.id,
        step=step.key,
        seq=event.seq,
        attempt=event.data["attempt"],
        execution_key=event.data.get("execution_key"),
        acting=verdict_acting(verdict=step.verdict) if step.verdict else "",
        verdict=step.verdict,
        switch=switch,
        request=request.id if request else None,
        consumed=request is not None and request.consumed_at is not None,
    )


def _apply_approval(ledger: Ledger, verb: str, event: LedgerEvent) -> None:
    data, at, seq = event.data, event.time, event.seq
    if verb == "opened":
        request = ApprovalState(
            id=data["request"],
            seq=seq,
            tenant=event.tenant,
            subject_kind=data["subject_kind"],
            subject_id=data["subject_id"],
            content_hash=data["content_hash"],
            quorum=data["quorum"],
            risk_tier=data["risk_tier"],
            requested_by=data["requested_by"],
            reason_codes=list(event.reason_codes),
            created_at=at,
        )
        ledger.approvals[request.id] = request
        if request.subject_kind == APPROVAL_SUBJECT:
            request.step = ledger.awaiting.get(request.content_hash)
            if request.step is None:
                ledger.anomaly(f"approval/{request.id}", "step", None, "no step has this content hash", seq)
            else:
                ledger.step_requests[request.step] = request
                step = ledger.executions[request.step[0]].steps[request.step[1]]
                step.status, step.approval = StepStatus.WAITING_APPROVAL.value, request.id
        return
    request = ledger.approvals.get(data["request"])
    if request is None:
        ledger.anomaly(event.subject, "event", event.type, "no approval.request.opened before it", seq)
        return
    request.events.append(RequestEvent(seq, verb, at, event.actor, data))
    if verb == "decided":
        request.decisions.append(
            {
                "approver": data["approver"],
                "decision": data["decision"],
                "reason": data["reason"],
                "content_hash": data["content_hash"],
                "decided_at": at,
            }
        )
    elif verb in ("approved", "rejected", "expired", "cancelled"):
        request.status, request.decided_at = verb, at
    elif verb == "consumed":
        request.consumed_at = at
        if request.step is not None:
            step = ledger.executions[request.step[0]].steps[request.step[1]]
            if step.status == StepStatus.WAITING_APPROVAL.value:
                step.status = StepStatus.READY.value
    elif verb == "escalated":
        request.escalation_level = data["level"]
    else:
        ledger.anomaly(event.subject, "event", event.type, "an event type replay does not know", seq)


def recorded_facts(plan: PlanState) -> dict[str, StepFacts]:
    return {
        s["key"]: StepFacts(
            action=s["action"], tier=s["risk_tier"], inputs=s["inputs"], action_version=s["action_version"]
        )
        for s in plan.steps
    }
