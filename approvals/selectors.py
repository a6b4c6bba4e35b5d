"""Reads behind the approvals console pages: the queue, one approval, and the dashboard's panel.

Everything is restricted to the principal's tenant, like the API. The queue costs a fixed number of
queries however many approvals are pending (tests pin the counts; `bench/` times it with 10,000 pending).
What an approval is *about* is its subject app's business: an app that wants the queue to show more than
the approval's summary (the runtime: the plan around a step) registers a queue context for its subject
kind (`register_queue_context`), which fills the rows of that kind with a bounded number of queries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, Min, QuerySet

from approvals.models import ApprovalDecision, ApprovalRequest, ApprovalStatus, ApprovalVote
from controlplane.identity.models import Principal, PrincipalKind
from controlplane.kernel.reasons import CATALOGUE
from controlplane.policy.models import RiskTier

QUEUE_PAGE_SIZE = 25


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


@dataclass(frozen=True)
class QueueNote:
    """Something a subject's owner says about an approval (the incident a remediation step belongs to):
    a label, a text, and where to read more (an href, or "")."""

    label: str
    text: str
    href: str = ""


@dataclass(frozen=True)
class DecideBlock:
    """Why the viewer cannot decide this approval, shown instead of the Approve button: the service's own
    refusal code (the one a decision would get) and a sentence."""

    code: str
    detail: str


@dataclass
class QueueRow:
    """One pending approval and everything the operator needs to decide it."""

    approval: ApprovalRequest
    approvals: list[str] = field(default_factory=list)  # who has approved so far (quorum > 1)
    blocked: DecideBlock | None = None  # the viewer may not decide it (their own request, decided already)
    notes: list[QueueNote] = field(default_factory=list)  # filled by subject owners' queue contexts
    # Filled by the subject kind's queue context (the runtime's, for a plan step):
    is_step: bool = False
    siblings: list[SiblingStep] = field(default_factory=list)
    trail: list[dict[str, Any]] = field(default_factory=list)  # the matched policy rules
    trace_id: str = ""
    # Pages the subject's owner links from the row (e.g. a skill install's review): (label, url) pairs.
    links: list[tuple[str, str]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        return self.approval.summary

    @property
    def reasons(self) -> list[tuple[str, str]]:
        return [(code, reason_description(code)) for code in self.approval.reason_codes]


@dataclass
class QueuePage:
    rows: list[QueueRow]
    page: Page
    total: int


# (the page's rows of one subject kind) -> None: fills them in place, in a fixed number of queries.
QueueContext = Callable[[list[QueueRow]], None]
_queue_contexts: dict[str, list[QueueContext]] = defaultdict(list)


def register_queue_context(subject_kind: str, fill: QueueContext) -> None:
    """Let an app add what the queue shows of approvals of `subject_kind` (from its ready()): the kind's
    owner (the runtime: the plan around a step), and any app that knows more about them (incidents: the
    incident a remediation step belongs to, as a `QueueNote`). Fills run in registration order
    (INSTALLED_APPS); registering the same function twice is harmless."""
    if fill not in _queue_contexts[subject_kind]:
        _queue_contexts[subject_kind].append(fill)


def queue_rows_fill(rows: list[QueueRow]) -> None:
    """Run every registered queue context over its kind's rows (the queue, and a decision's notice)."""
    by_kind: dict[str, list[QueueRow]] = defaultdict(list)
    for row in rows:
        by_kind[row.approval.subject_kind].append(row)
    for kind, kind_rows in by_kind.items():
        for fill in _queue_contexts.get(kind, []):
            fill(kind_rows)


def decide_block(
    *, approval: ApprovalRequest, principal: Principal, approved_by: list[str]
) -> DecideBlock | None:
    """What `approval_decide` would refuse this viewer for whatever they chose (their own request, a
    decision given already, not a person), so the queue says so instead of offering the buttons."""
    if principal.kind != PrincipalKind.HUMAN:
        return DecideBlock(
            "APPROVAL_APPROVER_NOT_HUMAN", f"{principal.ref} is a {principal.kind}; only people decide."
        )
    if approval.requested_by_id == principal.pk:
        return DecideBlock(
            "APPROVAL_SELF_APPROVAL",
            "You asked for this: nobody approves their own request; another person must.",
        )
    if principal.ref in approved_by:
        return DecideBlock(
            "APPROVAL_DUPLICATE_DECISION",
            f"You approved it already; it waits for {approval.quorum - len(approved_by)} more approver(s).",
        )
    return None


def pending_approvals(*, principal: Principal, filters: QueueFilters, now: datetime) -> QuerySet:
    approvals = ApprovalRequest.objects.filter(tenant_id=principal.tenant_id, status=ApprovalStatus.PENDING)
    if filters.tier:
        approvals = approvals.filter(risk_tier=filters.tier)
    if filters.kind:
        approvals = approvals.filter(subject_kind=filters.kind)
    if filters.min_age_seconds:
        approvals = approvals.filter(created_at__lte=now - timedelta(seconds=filters.min_age_seconds))
    return approvals


def approval_queue(
    *, principal: Principal, filters: QueueFilters, page: int, now: datetime, size: int = QUEUE_PAGE_SIZE
) -> QueuePage:
    """One page of pending approvals, oldest first (closest to expiry and escalation), with their context.

    Three queries whatever the queue's length — the count, the page (with the requester), the approvals
    already given — plus each subject kind's queue context on the page (the runtime's: two).
    """
    ordered = pending_approvals(principal=principal, filters=filters, now=now).order_by("created_at", "id")
    paginator = Paginator(ordered.select_related("requested_by__tenant"), size)
    current = paginator.get_page(page)
    rows = [QueueRow(approval=approval) for approval in current.object_list]
    if not rows:
        return QueuePage(rows=[], page=current, total=paginator.count)
    by_id = {row.approval.pk: row for row in rows}
    for decision in (
        ApprovalDecision.objects.filter(request__in=list(by_id), decision=ApprovalVote.APPROVE)
        .select_related("approver__tenant")
        .order_by("decided_at")
    ):
        by_id[decision.request_id].approvals.append(decision.approver.ref)
    for row in rows:
        row.blocked = decide_block(approval=row.approval, principal=principal, approved_by=row.approvals)
    queue_rows_fill(rows)
    return QueuePage(rows=rows, page=current, total=paginator.count)


def decided_rows(*, principal: Principal, approval_ids: list[str]) -> list[QueueRow]:
    """Approvals just decided, with what their subjects' owners show (the execution and trace of a step,
    the incident it remediates): what a decision's notice links to. Tenant-scoped; a bounded number of
    queries."""
    approvals = ApprovalRequest.objects.filter(tenant_id=principal.tenant_id, pk__in=approval_ids).order_by(
        "created_at", "id"
    )
    rows = [QueueRow(approval=approval) for approval in approvals]
    queue_rows_fill(rows)
    return rows


def queue_approval_get(*, principal: Principal, approval_id: str) -> ApprovalRequest | None:
    return ApprovalRequest.objects.filter(tenant_id=principal.tenant_id, pk=approval_id).first()


def queue_approvals_get(*, principal: Principal, approval_ids: list[str]) -> dict[str, ApprovalRequest]:
    return {
        a.pk: a for a in ApprovalRequest.objects.filter(tenant_id=principal.tenant_id, pk__in=approval_ids)
    }


# --- Dashboard panel ---------------------------------------------------------------------------------

TIERS_MOST_URGENT_FIRST = [RiskTier.CRITICAL, RiskTier.HIGH, RiskTier.MEDIUM, RiskTier.LOW]


@dataclass(frozen=True)
class PendingTier:
    """The pending approvals of one risk tier: how many, and since when the oldest waits."""

    tier: str
    count: int
    oldest: datetime | None


@dataclass(frozen=True)
class PendingSummary:
    tiers: list[PendingTier]

    @property
    def total(self) -> int:
        return sum(t.count for t in self.tiers)

    @property
    def oldest(self) -> datetime | None:
        waiting = [t.oldest for t in self.tiers if t.oldest is not None]
        return min(waiting) if waiting else None


def pending_count(*, principal: Principal) -> int:
    """How many approvals of the principal's tenant are pending (the navigation badge); one query."""
    return ApprovalRequest.objects.filter(
        tenant_id=principal.tenant_id, status=ApprovalStatus.PENDING
    ).count()


def pending_summary(*, principal: Principal) -> PendingSummary:
    """Pending approvals of the principal's tenant by risk tier, most urgent first; one query."""
    counted = {
        row["risk_tier"]: row
        for row in ApprovalRequest.objects.filter(
            tenant_id=principal.tenant_id, status=ApprovalStatus.PENDING
        )
        .order_by()
        .values("risk_tier")
        .annotate(count=Count("id"), oldest=Min("created_at"))
    }
    return PendingSummary(
        tiers=[
            PendingTier(
                tier=tier,
                count=counted.get(tier, {}).get("count", 0),
                oldest=counted.get(tier, {}).get("oldest"),
            )
            for tier in TIERS_MOST_URGENT_FIRST
        ]
    )
