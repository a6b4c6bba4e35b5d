"""The trace of an action: intent -> plan -> verdicts -> approvals -> step runs -> outcomes, from the ledger.

Every action carries the W3C trace context of its intent (the caller's `traceparent`, or a new one):
the intent, its execution and every runtime ledger event store it. `trace_get` gathers, in a constant
number of queries, the intents of one trace, their plans, executions, step runs and approval requests,
and the ledger events that record them — the events carrying the trace id, and the events of the
subjects the trace touches (`intent/…`, `plan/…`, `execution/…`, `approval/…`; approval decisions are
made in other requests, so they are found by subject). Each node of the tree names the ledger event
that records it (seq and hash), so any node can be checked against the chain.

Read by the API (`GET /api/v1/traces/{trace_id}/`), `manage.py trace show` and the console's explorer.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, Q

from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.identity.models import Tenant
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import Execution, Intent, PlanStep, StepRun, StepStatus

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")

# Runtime event types -> the kind of node they become.
_INTENT = "controlplane.intent.received"
_PLAN = ("controlplane.plan.compiled", "controlplane.plan.rejected")
_VERIFIED = "controlplane.plan.verified"
_EXECUTION_STARTED = "controlplane.execution.started"
_EXECUTION_FINAL = (
    "controlplane.execution.completed",
    "controlplane.execution.failed",
    "controlplane.execution.cancelled",
)
_STEP_STARTED = "controlplane.execution.step.started"
_STEP_OUTCOME = (
    "controlplane.execution.step.completed",
    "controlplane.execution.step.failed",
    "controlplane.execution.step.blocked",
)
# An attempt that ended without finishing the step: a retryable failure (tried again after a backoff), or
# a worker that died (its lease expired and the sweeper sent the step out again).
_ATTEMPT_END = ("controlplane.execution.step.retry_scheduled", "controlplane.execution.step.requeued")
_APPROVAL_OPENED = "controlplane.approval.request.opened"
_APPROVAL_DECIDED = "controlplane.approval.request.decided"


# Event types another app writes on a trace that belong under an intent: type -> the `data` key naming the
# intent (registered from that app's `ready()`; e.g. governance's model-call telemetry).
INTENT_ATTACHMENTS: dict[str, str] = {}


def register_intent_attachment(event_type: str, *, intent_key: str) -> None:
    """Show events of `event_type` whose `data[intent_key]` names an intent under that intent's node."""
    INTENT_ATTACHMENTS[event_type] = intent_key


@dataclass
class TraceNode:
    """One node of the tree, with the ledger event that records it (`seq` is None when none does)."""

    # intent | plan | execution | step | approval | decision | approval_state | run | attempt_end |
    # outcome | event
    kind: str
    ref: str
    title: str
    status: str = ""
    time: datetime | None = None
    seq: int | None = None
    hash: str = ""
    event_type: str = ""
    reason_codes: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    children: list[TraceNode] = field(default_factory=list)

    def record(self, event: LedgerEvent | None) -> TraceNode:
        """Attach the ledger event that records this node."""
        if event is not None:
            self.seq, self.hash, self.event_type = event.seq, event.hash, event.type
            self.time = self.time or event.time
            self.reason_codes = self.reason_codes or list(event.reason_codes)
        return self

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "title": self.title,
            "status": self.status,
            "time": self.time.isoformat() if self.time else None,
            "seq": self.seq,
            "hash": self.hash,
            "event_type": self.event_type,
            "reason_codes": self.reason_codes,
            "detail": self.detail,
            "children": [child.as_dict() for child in self.children],
        }


@dataclass
class Trace:
    """The forest of one trace: usually one intent; a caller may reuse a trace id for several."""

    trace_id: str
    tenant: str
    roots: list[TraceNode]
    event_count: int
    # What the tree was built from, for the page's header (goal, submitter, times, outcome): no more reads.
    intents: list[Intent] = field(default_factory=list, repr=False, compare=False)
    executions: dict[str, Execution] = field(default_factory=dict, repr=False, compare=False)

    def nodes(self):
        for root in self.roots:
            yield from root.walk()

    def seqs(self) -> list[int]:
        return sorted({node.seq for node in self.nodes() if node.seq is not None})

    def as_dict(self) -> dict[str, Any]:
        seqs = self.seqs()
        return {
            "trace_id": self.trace_id,
            "tenant": self.tenant,
            "events": self.event_count,
            "first_seq": seqs[0] if seqs else None,
            "last_seq": seqs[-1] if seqs else None,
            "roots": [root.as_dict() for root in self.roots],
        }


def trace_get(*, trace_id: str, tenant: Tenant | None) -> Trace:
    """The tree of one trace, restricted to one tenant (None: every tenant, for the CLI).

    TRACE_ID_INVALID for a malformed id; TRACE_NOT_FOUND when no intent and no ledger event of the
    tenant carries it. At most five queries whatever the size of the trace (intents, executions, their
    step runs with steps and approval requests, approval decisions, ledger events).
    """
    trace_id = (trace_id or "").strip().lower()
    if not TRACE_ID.match(trace_id) or trace_id == "0" * 32:
        raise ControlPlaneError("TRACE_ID_INVALID", "a trace id is 32 lowercase hex digits, not all zero")
    intents = Intent.objects.filter(trace_id=trace_id).select_related("tenant", "principal__tenant", "plan")
    if tenant is not None:
        intents = intents.filter(tenant=tenant)
    intents = list(intents.order_by("received_at", "id"))
    executions = {
        e.intent_id: e
        for e in Execution.objects.filter(intent__in=[i.pk for i in intents]).prefetch_related(
            Prefetch(
                "step_runs",
                queryset=StepRun.objects.select_related("step", "approval").order_by("step__position"),
            )
        )
    }
    approval_ids = [
        run.approval_id for e in executions.values() for run in e.step_runs.all() if run.approval_id
    ]
    decisions: dict[str, list[ApprovalDecision]] = defaultdict(list)
    for decision in ApprovalDecision.objects.filter(request__in=approval_ids).select_related(
        "approver__tenant"
    ):
        decisions[decision.request_id].append(decision)
    subjects = [f"intent/{i.pk}" for i in intents]
    subjects += [f"plan/{i.plan_id}" for i in intents if i.plan_id]
    subjects += [f"execution/{e.pk}" for e in executions.values()]
    subjects += [f"approval/{a}" for a in approval_ids]
    events = LedgerEvent.objects.filter(Q(trace_id=trace_id) | Q(subject__in=subjects)).defer(
        "canonical", "provenance"
    )
    if tenant is not None:
        events = events.filter(tenant=tenant.slug)
    events = list(events.order_by("seq"))
    if not intents and not events:
        raise ControlPlaneError("TRACE_NOT_FOUND", f"no intent or ledger event carries trace {trace_id}")

    placed: set[int] = set()
    roots = [_intent_node(intent, executions.get(intent.pk), events, decisions, placed) for intent in intents]
    # Events carrying the trace that no node claimed (another app's, or a type this module does not know).
    roots += [
        _event_node(event) for event in events if event.seq not in placed and event.trace_id == trace_id
    ]
    roots.sort(key=lambda node: (node.seq is None, node.seq or 0))
    slug = tenant.slug if tenant is not None else (intents[0].tenant.slug if intents else events[0].tenant)
    return Trace(
        trace_id=trace_id,
        tenant=slug,
        roots=roots,
        event_count=len(events),
        intents=intents,
        executions=executions,
    )


# --- building the tree ---------------------------------------------------------------------------------


def _first(events: list[LedgerEvent], placed: set[int], types, **match: Any) -> LedgerEvent | None:
    """The first unplaced event of these types whose subject and data match; marks it placed."""
    types = (types,) if isinstance(types, str) else types
    for event in events:
        if event.seq in placed or event.type not in types:
            continue
        if "subject" in match and event.subject != match["subject"]:
            continue
        if any(event.data.get(key) != value for key, value in match.items() if key != "subject"):
            continue
        placed.add(event.seq)
        return event
    return None


def _event_node(event: LedgerEvent) -> TraceNode:
    return TraceNode(
        kind="event", ref=event.id, title=event.type, status="recorded", detail=dict(event.data)
    ).record(event)


def _intent_node(
    intent: Intent,
    execution: Execution | None,
    events: list[LedgerEvent],
    decisions: dict[str, list[ApprovalDecision]],
    placed: set[int],
) -> TraceNode:
    subject = f"intent/{intent.pk}"
    node = TraceNode(
        kind="intent",
        ref=intent.pk,
        title=f"intent {intent.pk[:12]}",
        status=intent.status,
        time=intent.received_at,
        detail={
            "intent": intent.pk,
            "principal": intent.principal.ref,
            "goal": intent.draft.get("goal", "") if isinstance(intent.draft, dict) else "",
            "traceparent": intent.traceparent,
        },
    ).record(_first(events, placed, _INTENT, subject=subject))
    for event in events:  # what other apps recorded for this intent (model calls that led to it)
        key = INTENT_ATTACHMENTS.get(event.type)
        if key is not None and event.seq not in placed and event.data.get(key) == intent.pk:
            placed.add(event.seq)
            node.children.append(_event_node(event))
    if intent.plan_id is None:
        rejected = _first(events, placed, "controlplane.plan.rejected", subject=subject)
        node.children.append(
            TraceNode(
                kind="plan",
                ref="",
                title="plan rejected",
                status="rejected",
                reason_codes=[intent.rejection["code"]] if intent.rejection.get("code") else [],
                detail=dict(intent.rejection),
            ).record(rejected)
        )
        return node
    plan = intent.plan
    plan_node = TraceNode(
        kind="plan",
        ref=plan.pk,
        title=f"plan {plan.pk[:12]}",
        status="compiled",
        detail={"plan": plan.pk, "goal": plan.goal, "context": plan.context},
    ).record(
        _first(events, placed, "controlplane.plan.compiled", subject=f"plan/{plan.pk}", intent=intent.pk)
    )
    node.children.append(plan_node)
    if execution is not None:
        plan_node.children.append(_execution_node(execution, events, decisions, placed))
    return node


def _execution_node(
    execution: Execution,
    events: list[LedgerEvent],
    decisions: dict[str, list[ApprovalDecision]],
    placed: set[int],
) -> TraceNode:
    subject = f"execution/{execution.pk}"
    node = TraceNode(
        kind="execution",
        ref=execution.pk,
        title=f"execution {execution.pk[:12]}",
        status=execution.status,
        time=execution.started_at,
        detail={
            "execution": execution.pk,
            "environment": execution.environment,
            "profile": {
                "name": execution.profile_name,
                "version": execution.profile_version,
                "content_hash": execution.profile_hash,
            },
        },
    ).record(_first(events, placed, _EXECUTION_STARTED, subject=subject))
    verified = _first(events, placed, _VERIFIED, subject=subject)
    final = _first(events, placed, _EXECUTION_FINAL, subject=subject)
    for run in execution.step_runs.all():
        node.children.append(_step_node(run, subject, verified, final, events, decisions, placed))
    # Execution-level events nobody else claimed (e.g. types added later), in seq order.
    for event in events:
        if event.seq not in placed and event.subject == subject:
            placed.add(event.seq)
            node.children.append(_event_node(event))
    if final is not None:
        node.children.append(
            TraceNode(
                kind="outcome",
                ref=execution.pk,
                title="execution outcome",
                status=final.type.rsplit(".", 1)[-1],
                detail=dict(final.data),
            ).record(final)
        )
    return node


def _step_node(
    run: StepRun,
    subject: str,
    verified: LedgerEvent | None,
    final: LedgerEvent | None,
    events: list[LedgerEvent],
    decisions: dict[str, list[ApprovalDecision]],
    placed: set[int],
) -> TraceNode:
    """A step as policy saw it (its verdict, recorded by plan.verified), then its approval, runs, outcome."""
    step = run.step
    decision = run.decision or {}
    node = TraceNode(
        kind="step",
        ref=step.key,
        title=f"step {step.key} · {step.action}",
        status=run.status,
        time=verified.time if verified else None,
        reason_codes=list(decision.get("reason_codes", [])),
        detail={
            "step": step.key,
            "action": step.action,
            "action_version": step.action_version,
            "execution_key": step.execution_key,
            "inputs": step.inputs,
            "depends_on": step.depends_on,
            "verdict": run.verdict,
            "enforced": run.enforced,
            "tier": run.effective_tier,
            "quorum": run.quorum,
            "decision_hash": run.decision_hash,
        },
    ).record(verified)
    if run.approval_id:
        node.children.append(_approval_node(run.approval, events, decisions[run.approval_id], placed))
    _attempts_attach(node, step, subject, events, placed)
    if run.status == StepStatus.CANCELLED:
        # Steps stopped with their execution have no event of their own: the execution's last one says so.
        node.children.append(
            TraceNode(
                kind="outcome",
                ref=step.execution_key,
                title="outcome",
                status="cancelled",
                detail={"by": final.type if final else ""},
            ).record(final)
        )
    return node


def _attempts_attach(
    node: TraceNode, step: PlanStep, subject: str, events: list[LedgerEvent], placed: set[int]
) -> None:
    """The step's own events under its node: each run (attempt), how it ended, the outcome."""
    current: TraceNode | None = None  # the latest run (attempt) of the step
    for event in events:
        if event.seq in placed or event.subject != subject or event.data.get("step") != step.key:
            continue
        placed.add(event.seq)
        if event.type == _STEP_STARTED:
            current = TraceNode(
                kind="run",
                ref=step.execution_key,
                title=f"run attempt {event.data.get('attempt', 1)}",
                status="started",
                detail=dict(event.data),
            ).record(event)
            node.children.append(current)
        elif event.type in _ATTEMPT_END and current is not None:
            ended = event.type.rsplit(".", 1)[-1]
            current.status = ended
            current.children.append(
                TraceNode(
                    kind="attempt_end",
                    ref=step.execution_key,
                    title=ended.replace("_", " "),
                    status=ended,
                    detail=dict(event.data),
                ).record(event)
            )
        elif event.type in _STEP_OUTCOME:
            outcome = event.type.rsplit(".", 1)[-1]
            if current is not None:
                current.status = outcome
            (current or node).children.append(
                TraceNode(
                    kind="outcome",
                    ref=step.execution_key,
                    title="outcome",
                    status=outcome,
                    detail=dict(event.data),
                ).record(event)
            )
        else:
            (current or node).children.append(_event_node(event))


def _approval_node(
    request: ApprovalRequest,
    events: list[LedgerEvent],
    decisions: list[ApprovalDecision],
    placed: set[int],
) -> TraceNode:
    subject = f"approval/{request.pk}"
    node = TraceNode(
        kind="approval",
        ref=request.pk,
        title=f"approval {request.pk[:12]}",
        status=request.status,
        time=request.created_at,
        reason_codes=list(request.reason_codes),
        detail={
            "request": request.pk,
            "content_hash": request.content_hash,
            "risk_tier": request.risk_tier,
            "quorum": request.quorum,
            "escalation_level": request.escalation_level,
            "expires_at": request.expires_at.isoformat() if request.expires_at else None,
            "consumed_at": request.consumed_at.isoformat() if request.consumed_at else None,
        },
    ).record(_first(events, placed, _APPROVAL_OPENED, subject=subject))
    by_approver = {d.approver.ref: d for d in decisions}
    for event in events:
        if event.seq in placed or event.subject != subject:
            continue
        placed.add(event.seq)
        verb = event.type.rsplit(".", 1)[-1]
        if event.type == _APPROVAL_DECIDED:
            approver = event.data.get("approver", event.actor)
            recorded = by_approver.get(approver)
            node.children.append(
                TraceNode(
                    kind="decision",
                    ref=approver,
                    title=f"decision by {approver}",
                    status=event.data.get("decision", ""),
                    detail={
                        "approver": approver,
                        "decision": event.data.get("decision", ""),
                        "reason": event.data.get("reason", ""),
                        "content_hash": recorded.content_hash if recorded else event.data.get("content_hash"),
                    },
                ).record(event)
            )
        else:
            node.children.append(
                TraceNode(
                    kind="approval_state",
                    ref=request.pk,
                    title="approval",
                    status=verb,
                    detail={k: v for k, v in event.data.items() if k not in ("subject_kind", "subject_id")},
                ).record(event)
            )
    return node
