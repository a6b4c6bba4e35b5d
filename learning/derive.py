"""Outcomes derived from the ledger, and nothing else: what a signed chain proves happened.

`outcomes_fold(events)` is a pure function of ledger events (in seq order): for every finished execution
and every closed incident it returns an `OutcomeFacts`, with the seqs of the events it rests on. The
learning app may not read the incidents app (they are siblings in one layer) and does not need to read the
runtime's tables either: the events are the evidence, and a report computed from the same prefix of the
chain is the same report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from learning.profile import lowest_fidelity

TIER_ORDER = ("low", "medium", "high", "critical")

# The event types the fold reads (everything else is skipped).
EVENT_TYPES = (
    "controlplane.plan.compiled",
    "controlplane.plan.verified",
    "controlplane.execution.started",
    "controlplane.execution.step.completed",
    "controlplane.execution.step.blocked",
    "controlplane.execution.step.rollback_requested",
    "controlplane.execution.completed",
    "controlplane.execution.failed",
    "controlplane.execution.cancelled",
    "controlplane.approval.request.opened",
    "controlplane.approval.request.decided",
    "controlplane.killswitch.engaged",
    "controlplane.killswitch.released",
    "controlplane.promotion.decided",
    "controlplane.incident.opened",
    "controlplane.incident.reopened",
    "controlplane.incident.closed",
    "controlplane.learning.label.recorded",
    "controlplane.learning.claim.recorded",
    "controlplane.learning.finding.recorded",
    "controlplane.learning.finding.decided",
)

# Executors whose result comes from outside the acting agent (a runner signs its reply).
INDEPENDENT_EXECUTORS = ("http.webhook",)


def outcome_id(kind: str, subject: str) -> str:
    return hashlib.sha256(f"{kind}:{subject}".encode()).hexdigest()


@dataclass
class OutcomeFacts:
    id: str
    kind: str  # execution | incident
    subject: str  # the execution or incident id
    tenant: str
    actor: str  # the acting agent (execution) or the detection rule (incident)
    result: str  # completed | failed | cancelled | rolled_back | closed
    finished_at: str
    actions: list[str] = field(default_factory=list)
    tier: str = ""
    human_approved: bool = False
    approvers: list[str] = field(default_factory=list)
    confirmed_independently: bool = False
    trace_complete: bool = False
    fidelity: str = "live"
    reopened: bool = False
    service: str = ""
    score_bp: int | None = None
    policy_denied: bool = False
    inputs_text: str = ""
    seqs: list[int] = field(default_factory=list)
    trace_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "inputs_text"}


@dataclass
class _Execution:
    id: str
    tenant: str = ""
    actor: str = ""
    trace_id: str = ""
    plan: str = ""
    verified: bool = False
    started: bool = False
    tiers: list[str] = field(default_factory=list)
    needs_approval: bool = False
    denied: bool = False
    fidelities: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    rolled_back: bool = False
    runner_confirmed: bool = False


@dataclass
class Folded:
    outcomes: dict[str, OutcomeFacts] = field(default_factory=dict)
    # (outcome id, reviewer, label, reason, seq) in chain order
    labels: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    # approval decisions: (approver, seconds from opening, decision, tenant, seq)
    decisions: list[tuple[str, float, str, str, int]] = field(default_factory=list)
    # kill-switch drills: (tenant or "" for global, engaged at, released at)
    drills: list[tuple[str, str, str]] = field(default_factory=list)
    # agents' own claims of an outcome: (outcome id, claimant, result, seq)
    claims: list[tuple[str, str, str, int]] = field(default_factory=list)
    # findings on the chain: fingerprint -> {code, severity, principal, outcome, status}
    findings: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_seq: int = 0
    last_time: str = ""


# The keys the fold reads of each event type (its contract requires them); an event without them is skipped.
_REQUIRED = {
    "controlplane.plan.compiled": ("plan",),
    "controlplane.plan.verified": ("execution",),
    "controlplane.execution.": ("execution",),
    "controlplane.approval.request.opened": ("request",),
    "controlplane.approval.request.decided": ("request",),
    "controlplane.incident.": ("incident",),
    "controlplane.learning.label.recorded": ("outcome", "reviewer", "label"),
    "controlplane.learning.claim.recorded": ("outcome", "result"),
    "controlplane.learning.finding.": ("fingerprint",),
}


def _has_keys(kind: str, data: dict[str, Any]) -> bool:
    for prefix, keys in _REQUIRED.items():
        if kind == prefix or (prefix.endswith(".") and kind.startswith(prefix)):
            return all(key in data for key in keys)
    return True


def _when(event: Any) -> str:
    return event.time.isoformat() if hasattr(event.time, "isoformat") else str(event.time)


def outcomes_fold(events: Iterable[Any]) -> Folded:
    """Fold ledger events (objects with seq, type, subject, tenant, actor, time, data, fidelity, trace_id,
    reason_codes), in seq order, into outcomes, labels, approval decisions and kill-switch drills."""
    folded = Folded()
    plans: dict[str, list[dict[str, Any]]] = {}
    executions: dict[str, _Execution] = {}
    by_trace: dict[str, str] = {}
    approvals_opened: dict[str, Any] = {}
    approvals_of_trace: dict[str, list[str]] = {}
    scores: dict[str, int] = {}
    incidents: dict[str, dict[str, Any]] = {}
    engaged: dict[tuple[str, str], str] = {}
    for event in events:
        folded.last_seq, folded.last_time = max(folded.last_seq, event.seq), _when(event)
        kind, data = event.type, event.data
        if not isinstance(data, dict) or not _has_keys(kind, data):
            continue  # an event off its contract (hand-written demo data): nothing to learn from it
        if kind == "controlplane.plan.compiled":
            plans[data["plan"]] = data.get("steps", [])
        elif kind == "controlplane.plan.verified":
            execution = executions.setdefault(data["execution"], _Execution(data["execution"]))
            execution.tenant, execution.actor, execution.trace_id = event.tenant, event.actor, event.trace_id
            execution.plan, execution.verified = data.get("plan", ""), True
            for verdict in data.get("verdicts", []):
                execution.tiers.append(verdict.get("tier", ""))
                acting = verdict.get("effective_verdict") or verdict.get("verdict")
                execution.needs_approval |= acting == "require_approval"
                execution.denied |= acting == "deny"
            execution.fidelities.append(event.fidelity)
            execution.seqs.append(event.seq)
            if event.trace_id:
                by_trace[event.trace_id] = execution.id
        elif kind.startswith("controlplane.execution."):
            execution = executions.setdefault(
                data.get("execution", ""), _Execution(data.get("execution", ""))
            )
            execution.fidelities.append(event.fidelity)
            execution.seqs.append(event.seq)
            execution.tenant = execution.tenant or event.tenant
            if kind == "controlplane.execution.started":
                execution.started = True
            elif kind == "controlplane.execution.step.completed":
                steps = {s["key"]: s for s in plans.get(execution.plan, [])}
                action = steps.get(data.get("step"), {}).get("action", "")
                execution.runner_confirmed |= action in INDEPENDENT_EXECUTORS
            elif kind == "controlplane.execution.step.blocked":
                execution.denied |= any(c.startswith("POLICY_DENY") for c in event.reason_codes)
            elif kind == "controlplane.execution.step.rollback_requested":
                execution.rolled_back = True
                prior = folded.outcomes.get(outcome_id("execution", execution.id))
                if prior is not None:
                    prior.result = "rolled_back"
                    prior.seqs.append(event.seq)
            elif kind in (
                "controlplane.execution.completed",
                "controlplane.execution.failed",
                "controlplane.execution.cancelled",
            ):
                folded.outcomes[outcome_id("execution", execution.id)] = _execution_outcome(
                    execution, kind.rsplit(".", 1)[-1], event, plans, approvals_of_trace
                )
        elif kind == "controlplane.approval.request.opened":
            approvals_opened[data["request"]] = event
        elif kind == "controlplane.approval.request.decided":
            opened = approvals_opened.get(data["request"])
            seconds = (event.time - opened.time).total_seconds() if opened is not None else 0.0
            folded.decisions.append((data.get("approver", event.actor), seconds, data.get("decision", ""),
                                     event.tenant, event.seq))  # fmt: skip
            if data.get("decision") == "approve" and event.trace_id:
                approvals_of_trace.setdefault(event.trace_id, []).append(data.get("approver", event.actor))
        elif kind in ("controlplane.killswitch.engaged", "controlplane.killswitch.released"):
            key = (data.get("scope", ""), data.get("target", ""))
            if kind.endswith("engaged"):
                engaged[key] = _when(event)
            elif key in engaged:
                tenant = data.get("target", "") if data.get("scope") == "tenant" else ""
                folded.drills.append((tenant, engaged.pop(key), _when(event)))
        elif kind == "controlplane.promotion.decided":
            scores[data.get("evidence", "")] = int(data.get("score_bp", 0))
        elif kind == "controlplane.incident.opened":
            incidents[data["incident"]] = {
                "tenant": event.tenant,
                "service": data.get("service", ""),
                "rule": data.get("rule", ""),
                "score_bp": scores.get(data.get("evidence", "")),
                "fidelities": [event.fidelity],
                "seqs": [event.seq],
                "reopened": False,
            }
        elif kind == "controlplane.incident.reopened" and data.get("incident") in incidents:
            incidents[data["incident"]]["reopened"] = True
            incidents[data["incident"]]["seqs"].append(event.seq)
        elif kind == "controlplane.incident.closed" and data.get("incident") in incidents:
            facts = incidents[data["incident"]]
            facts["seqs"].append(event.seq)
            facts["fidelities"].append(event.fidelity)
            folded.outcomes[outcome_id("incident", data["incident"])] = OutcomeFacts(
                id=outcome_id("incident", data["incident"]),
                kind="incident",
                subject=data["incident"],
                tenant=facts["tenant"],
                actor=facts["rule"],
                result="closed",
                finished_at=_when(event),
                trace_complete=facts["score_bp"] is not None,
                fidelity=lowest_fidelity(facts["fidelities"]),
                reopened=facts["reopened"],
                service=facts["service"],
                score_bp=facts["score_bp"],
                seqs=list(facts["seqs"]),
            )
        elif kind == "controlplane.learning.label.recorded":
            folded.labels.append(
                (data["outcome"], data["reviewer"], data["label"], data.get("reason", ""), event.seq)
            )
        elif kind == "controlplane.learning.claim.recorded":
            folded.claims.append((data["outcome"], event.actor, data["result"], event.seq))
        elif kind == "controlplane.learning.finding.recorded":
            folded.findings[data["fingerprint"]] = {
                "code": data["code"],
                "severity": data["severity"],
                "principal": data.get("principal", ""),
                "outcome": data.get("outcome", ""),
                "status": "open",
            }
        elif kind == "controlplane.learning.finding.decided" and data["fingerprint"] in folded.findings:
            folded.findings[data["fingerprint"]]["status"] = data["status"]
    return folded


def _execution_outcome(
    execution: _Execution,
    result: str,
    event: Any,
    plans: dict[str, list[dict[str, Any]]],
    approvals_of_trace: dict[str, list[str]],
) -> OutcomeFacts:
    steps = plans.get(execution.plan, [])
    approvers = sorted(set(approvals_of_trace.get(execution.trace_id, [])))
    tiers = [t for t in execution.tiers if t in TIER_ORDER]
    complete = execution.verified and execution.started and bool(steps)
    if execution.needs_approval and result == "completed":  # it ran: a person must have approved it
        complete = complete and bool(approvers)
    return OutcomeFacts(
        id=outcome_id("execution", execution.id),
        kind="execution",
        subject=execution.id,
        tenant=execution.tenant or event.tenant,
        actor=execution.actor,
        result="rolled_back" if execution.rolled_back else result,
        finished_at=_when(event),
        actions=[s.get("action", "") for s in steps],
        tier=max(tiers, key=TIER_ORDER.index) if tiers else "",
        human_approved=bool(approvers),
        approvers=approvers,
        confirmed_independently=execution.runner_confirmed,
        trace_complete=complete,
        fidelity=lowest_fidelity(execution.fidelities),
        policy_denied=execution.denied,
        inputs_text=repr([s.get("inputs", {}) for s in steps]),
        seqs=list(execution.seqs),
        trace_id=execution.trace_id,
    )
