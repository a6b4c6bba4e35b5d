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
from controlplane.identity.models import Principal
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


@dataclass
class QueueRow:
    """One pending approval and everything the operator needs to decide it."""

    approval: ApprovalRequest
    approvals: list[str] = field(default_factory=list)  # who has approved so far (quorum > 1)
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
_queue_contexts: dict[str, QueueContext] = {}


def register_queue_context(subject_kind: str, fill: QueueContext) -> None:
    """Let the app owning `subject_kind` add what the queue shows of its approvals (from its ready())."""
    _queue_contexts[subject_kind] = fill


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
    by_kind: dict[str, list[QueueRow]] = defaultdict(list)
    for row in rows:
        by_kind[row.approval.subject_kind].append(row)
    for kind, kind_rows in by_kind.items():
        fill = _queue_contexts.get(kind)
        if fill is not None:
            fill(kind_rows)
    return QueuePage(rows=rows, page=current, total=paginator.count)


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
