"""Reads behind the console's action pages: the approval queue, executions, traces, the kill switch.

Everything is restricted to the principal's tenant, like the API. Every page costs a fixed number of
queries however many requests are pending or steps a plan has (tests pin the counts; `bench/` times the
queue with 10,000 pending requests).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet

from approvals.models import ApprovalDecision, ApprovalRequest, ApprovalStatus, ApprovalVote
from controlplane.console.selectors import EventVerification, event_verify
from controlplane.identity.models import Principal
from controlplane.kernel.reasons import CATALOGUE
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import load_keys
from controlplane.runtime.models import Execution, KillSwitch, KillSwitchScope, StepRun
from controlplane.runtime.services import APPROVAL_SUBJECT
from controlplane.runtime.traces import Trace, TraceNode

QUEUE_PAGE_SIZE = 25
EXECUTIONS_PAGE_SIZE = 25


def reason_description(code: str) -> str:
    entry = CATALOGUE.get(code)
    return entry.description if entry else ""


# --- Approval queue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    """Validated queue filters; empty means "any"."""

    tenant: str = ""
    tier: str = ""
    kind: str = ""
    min_age_seconds: int | None = None


@dataclass(frozen=True)
class SiblingStep:
    """A step of the plan around the step to approve, with its state now."""

    key: str
    action: str
    status: str
    verdict: str
    tier: str
    is_subject: bool


@dataclass
class QueueRow:
    """One pending request and everything the operator needs to decide it."""

    request: ApprovalRequest
    approvals: list[str] = field(default_factory=list)  # who has approved so far (quorum > 1)
    siblings: list[SiblingStep] = field(default_factory=list)
    trail: list[dict[str, Any]] = field(default_factory=list)  # the matched policy rules
    trace_id: str = ""

    @property
    def is_step(self) -> bool:
        return self.request.subject_kind == APPROVAL_SUBJECT

    @property
    def summary(self) -> dict[str, Any]:
        return self.request.summary

    @property
    def reasons(self) -> list[tuple[str, str]]:
        return [(code, reason_description(code)) for code in self.request.reason_codes]


@dataclass
class QueuePage:
    rows: list[QueueRow]
    page: Page
    total: int


def pending_requests(*, principal: Principal, filters: QueueFilters, now: datetime) -> QuerySet:
    requests = ApprovalRequest.objects.filter(tenant_id=principal.tenant_id, status=ApprovalStatus.PENDING)
    if filters.tier:
        requests = requests.filter(risk_tier=filters.tier)
    if filters.kind:
        requests = requests.filter(subject_kind=filters.kind)
    if filters.min_age_seconds:
        requests = requests.filter(created_at__lte=now - timedelta(seconds=filters.min_age_seconds))
    return requests


def approval_queue(
    *, principal: Principal, filters: QueueFilters, page: int, now: datetime, size: int = QUEUE_PAGE_SIZE
) -> QueuePage:
    """One page of pending requests, oldest first (closest to expiry and escalation), with their context.

    Five queries whatever the queue's length: the count, the page (with the requester), the approvals
    already given, the steps of the plans around the page's steps, and those steps' policy trails.
    """
    ordered = pending_requests(principal=principal, filters=filters, now=now).order_by("created_at", "id")
    paginator = Paginator(ordered.select_related("requested_by__tenant"), size)
    current = paginator.get_page(page)
    rows = [QueueRow(request=request) for request in current.object_list]
    if not rows:
        return QueuePage(rows=[], page=current, total=paginator.count)
    by_id = {row.request.pk: row for row in rows}
    for decision in (
        ApprovalDecision.objects.filter(request__in=list(by_id), decision=ApprovalVote.APPROVE)
        .select_related("approver__tenant")
        .order_by("decided_at")
    ):
        by_id[decision.request_id].approvals.append(decision.approver.ref)
    step_rows = {int(row.request.subject_id): row for row in rows if row.is_step}
    executions = {row.summary.get("execution") for row in step_rows.values()} - {None}
    if step_rows:
        plan_steps: dict[str, list[StepRun]] = defaultdict(list)
        for run in (
            StepRun.objects.filter(execution_id__in=executions)
            .select_related("step", "execution")
            .only(
                "id",
                "status",
                "verdict",
                "effective_tier",
                "execution_id",
                "execution__trace_id",
                "step__key",
                "step__action",
                "step__position",
            )
            .order_by("execution_id", "step__position")
        ):
            plan_steps[run.execution_id].append(run)
        trails = dict(StepRun.objects.filter(pk__in=list(step_rows)).order_by().values_list("pk", "decision"))
        for run_id, row in step_rows.items():
            runs = plan_steps.get(row.summary.get("execution"), [])
            row.siblings = [
                SiblingStep(
                    key=run.step.key,
                    action=run.step.action,
                    status=run.status,
                    verdict=run.verdict,
                    tier=run.effective_tier,
                    is_subject=run.pk == run_id,
                )
                for run in runs
            ]
            row.trace_id = runs[0].execution.trace_id if runs else ""
            row.trail = [entry for entry in (trails.get(run_id) or {}).get("trail", []) if entry["matched"]]
    return QueuePage(rows=rows, page=current, total=paginator.count)


def queue_request_get(*, principal: Principal, request_id: str) -> ApprovalRequest | None:
    return ApprovalRequest.objects.filter(tenant_id=principal.tenant_id, pk=request_id).first()


def queue_requests_get(*, principal: Principal, request_ids: list[str]) -> dict[str, ApprovalRequest]:
    return {
        r.pk: r for r in ApprovalRequest.objects.filter(tenant_id=principal.tenant_id, pk__in=request_ids)
    }


# --- Executions --------------------------------------------------------------------------------------


def executions_page(*, principal: Principal, status: str, page: int) -> Page:
    """The tenant's executions, newest first, with their intent's goal; two queries a page."""
    executions = (
        Execution.objects.filter(tenant_id=principal.tenant_id)
        .select_related("plan", "intent__principal__tenant")
        .only(
            "id",
            "status",
            "trace_id",
            "started_at",
            "finished_at",
            "reason_codes",
            "environment",
            "profile_name",
            "profile_version",
            "plan__goal",
            "intent__principal__name",
            "intent__principal__tenant__slug",
        )
        .order_by("-started_at", "id")
    )
    if status:
        executions = executions.filter(status=status)
    return Paginator(executions, EXECUTIONS_PAGE_SIZE).get_page(page)


# --- Traces ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceVerification:
    """Each of the trace's events checked by the chain verifier, one by one."""

    results: dict[int, EventVerification]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results.values())

    @property
    def failed(self) -> list[int]:
        return sorted(seq for seq, result in self.results.items() if not result.ok)


def trace_verify(*, trace: Trace) -> TraceVerification:
    """Verify every event the trace's nodes name (hash, columns, link to its predecessor, key, signature).

    Three queries: the events, their predecessors' hashes, and the keys; then each event goes through
    the same `verify_rows` the event page and `manage.py ledger verify` use.
    """
    seqs = trace.seqs()
    events = list(LedgerEvent.objects.filter(seq__in=seqs).order_by("seq"))
    previous = dict(LedgerEvent.objects.filter(seq__in=[s - 1 for s in seqs]).values_list("seq", "hash"))
    keys = load_keys()
    return TraceVerification(
        results={event.seq: event_verify(event=event, prev_hashes=previous, keys=keys) for event in events}
    )


@dataclass
class TraceRow:
    """A node of the tree as the explorer draws it: the node, its event's verification, its children."""

    node: TraceNode
    check: EventVerification | None
    children: list[TraceRow]


def trace_rows(*, trace: Trace, verification: TraceVerification) -> list[TraceRow]:
    def row(node: TraceNode) -> TraceRow:
        check = verification.results.get(node.seq) if node.seq is not None else None
        return TraceRow(node=node, check=check, children=[row(child) for child in node.children])

    return [row(root) for root in trace.roots]


def trace_outcomes(*, trace: Trace) -> list[str]:
    """What became of each intent of the trace: its execution's status, or `rejected`."""
    return [
        node.status
        for node in trace.nodes()
        if node.kind == "execution" or (node.kind == "plan" and node.status == "rejected")
    ]


def trace_event_get(*, trace: Trace, seq: int) -> LedgerEvent | None:
    """An event the trace names (the trace was already restricted to the principal's tenant)."""
    if seq not in set(trace.seqs()):
        return None
    return LedgerEvent.objects.filter(seq=seq).first()


# --- Kill switch -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillSwitchStatus:
    switches: list[KillSwitch]

    @property
    def engaged(self) -> list[KillSwitch]:
        return [s for s in self.switches if s.engaged]


def killswitch_status() -> KillSwitchStatus:
    return KillSwitchStatus(switches=list(KillSwitch.objects.order_by("scope", "target")))


def killswitch_engaged_for_principal(*, principal: Principal) -> list[KillSwitch]:
    """The engaged switches that hold this principal's tenant: global, its tenant, or any action."""
    return list(
        KillSwitch.objects.filter(engaged=True)
        .filter(
            Q(scope=KillSwitchScope.GLOBAL)
            | Q(scope=KillSwitchScope.TENANT, target=principal.tenant.slug)
            | Q(scope=KillSwitchScope.ACTION)
        )
        .order_by("scope", "target")
    )
