"""Every write of the approvals app: opening requests, deciding, consuming, expiring and escalating.

Rules enforced here (each refusal carries its reason code and writes nothing):
- only a human principal holding `approvals.decide` in the request's tenant decides;
- nobody approves their own request (APPROVAL_SELF_APPROVAL), and nobody decides twice;
- a decision names the content hash it saw; if the content changed, it is void (APPROVAL_CONTENT_CHANGED);
- every decision needs a reason; the quorum counts distinct approvers; one rejection rejects;
- a granted approval is consumed once (APPROVAL_ALREADY_CONSUMED), bound to its content hash;
- expiry fails closed: an expired request grants nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.models import ApprovalDecision, ApprovalRequest, ApprovalStatus, ApprovalVote
from approvals.registry import observers, resolver_for
from controlplane.identity.models import Principal, PrincipalKind
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.batch import ledger_deferred
from controlplane.ledger.services import ledger_append

DECIDE_CAPABILITY = "approvals.decide"
BULK_LIMIT = 200  # approvals one bulk decision may name (the API and the console)


def request_id_for(*, subject_kind: str, subject_id: str, content_hash: str) -> str:
    """Deterministic: the same subject and content always map to the same request."""
    return hashlib.sha256(f"{subject_kind}\n{subject_id}\n{content_hash}".encode()).hexdigest()


def _event_data(approval: ApprovalRequest, **data: Any) -> dict[str, Any]:
    """The payload every event of an approval carries (what is approved), with the event's own fields."""
    return {
        "request": approval.id,
        "subject_kind": approval.subject_kind,
        "subject_id": approval.subject_id,
        "content_hash": approval.content_hash,
        **data,
    }


@transaction.atomic
def approval_request_open(
    *,
    subject_kind: str,
    subject_id: str,
    content_hash: str,
    requested_by: Principal,
    risk_tier: str,
    quorum: int,
    summary: dict[str, Any],
    reason_codes: list[str],
    timeout_seconds: int | None = None,
    escalation_ladder: list[dict[str, int]] | None = None,
    traceparent: str = "",
    at: datetime | None = None,
) -> ApprovalRequest:
    """Open (or return the already open) request for this subject and content.

    With `traceparent` (the W3C trace context of what is approved), every event of the request, its
    decisions and its expiry included, joins that trace; otherwise each takes the current request's.
    """
    if resolver_for(subject_kind) is None:
        raise ControlPlaneError("APPROVAL_SUBJECT_UNKNOWN", f"no app owns approval subject {subject_kind!r}")
    if quorum < 1:
        raise ControlPlaneError("VALIDATION_FAILED", "an approval needs a quorum of at least one")
    at = at or timezone.now()
    approval_id = request_id_for(subject_kind=subject_kind, subject_id=subject_id, content_hash=content_hash)
    existing = ApprovalRequest.objects.filter(pk=approval_id).first()
    if existing:
        return existing
    approval = ApprovalRequest.objects.create(
        id=approval_id,
        tenant=requested_by.tenant,
        subject_kind=subject_kind,
        subject_id=subject_id,
        content_hash=content_hash,
        summary=summary,
        risk_tier=risk_tier,
        quorum=quorum,
        reason_codes=reason_codes,
        requested_by=requested_by,
        escalation_ladder=escalation_ladder or [],
        traceparent=traceparent,
        created_at=at,
        expires_at=at + timedelta(seconds=timeout_seconds) if timeout_seconds else None,
    )
    ledger_append(
        type="controlplane.approval.request.opened",
        subject=f"approval/{approval.id}",
        data=_event_data(approval, quorum=quorum, risk_tier=risk_tier, requested_by=requested_by.ref),
        tenant=approval.tenant.slug,
        actor=requested_by.ref,
        time=at,
        reason_codes=list(reason_codes),
        traceparent=approval.traceparent or None,
    )
    _observe(approval, "opened")
    return approval


def _observe(approval: ApprovalRequest, event: str) -> None:
    for observer in observers():
        observer(approval, event)


def _lock(approval: ApprovalRequest) -> ApprovalRequest:
    return (
        ApprovalRequest.objects.select_for_update()
        .select_related("tenant", "requested_by")
        .get(pk=approval.pk)
    )


def _refuse_unless_may_decide(approval: ApprovalRequest, actor: Principal) -> None:
    if actor.tenant_id != approval.tenant_id:
        raise ControlPlaneError("NOT_FOUND", "no such approval request in your tenant")
    if actor.kind != PrincipalKind.HUMAN:
        raise ControlPlaneError(
            "APPROVAL_APPROVER_NOT_HUMAN", f"{actor.ref} is a {actor.kind}; only people decide"
        )
    if not actor.has_capability(DECIDE_CAPABILITY):
        raise ControlPlaneError("CAPABILITY_MISSING", f"{actor.ref} lacks {DECIDE_CAPABILITY!r}")
    if actor.pk == approval.requested_by_id:
        raise ControlPlaneError("APPROVAL_SELF_APPROVAL", "nobody approves their own request")


def _resolve(approval: ApprovalRequest) -> None:
    resolver = resolver_for(approval.subject_kind)
    if resolver is not None:
        resolver(approval)
    _observe(approval, approval.status)


@transaction.atomic
@ledger_deferred()  # the chain's lock after the subject's row locks (the resolver's), not before them
def approval_decide(
    *,
    approval: ApprovalRequest,
    actor: Principal,
    decision: str,
    reason: str,
    content_hash: str,
    at: datetime | None = None,
) -> ApprovalRequest:
    """Record one person's decision on `approval`; approve at quorum, reject at the first rejection."""
    at = at or timezone.now()
    approval = _lock(approval)
    if decision not in ApprovalVote.values:
        raise ControlPlaneError("VALIDATION_FAILED", "decision must be approve or reject")
    if not reason or not reason.strip():
        raise ControlPlaneError("APPROVAL_REASON_REQUIRED", "every decision needs a reason")
    _refuse_unless_may_decide(approval, actor)
    if approval.status != ApprovalStatus.PENDING:
        code = "APPROVAL_EXPIRED" if approval.status == ApprovalStatus.EXPIRED else "APPROVAL_NOT_PENDING"
        raise ControlPlaneError(code, f"the request is {approval.status}")
    if approval.expires_at and at >= approval.expires_at:
        raise ControlPlaneError("APPROVAL_EXPIRED", "the request expired before this decision")
    if content_hash != approval.content_hash:
        raise ControlPlaneError(
            "APPROVAL_CONTENT_CHANGED", "what you saw is not what is being approved; reload it"
        )
    try:
        with transaction.atomic():
            ApprovalDecision.objects.create(
                request=approval,
                approver=actor,
                decision=decision,
                reason=reason.strip(),
                content_hash=content_hash,
                decided_at=at,
            )
    except IntegrityError as exc:
        raise ControlPlaneError("APPROVAL_DUPLICATE_DECISION", f"{actor.ref} has already decided") from exc
    ledger_append(
        type="controlplane.approval.request.decided",
        subject=f"approval/{approval.id}",
        data=_event_data(approval, decision=decision, approver=actor.ref, reason=reason.strip()),
        tenant=approval.tenant.slug,
        actor=actor.ref,
        time=at,
        reason_codes=[],
        traceparent=approval.traceparent or None,
    )
    if decision == ApprovalVote.REJECT:
        approval.reject()
    elif approval.quorum_reached():
        approval.approve()
    else:
        _observe(approval, "decided")
        return approval
    approval.decided_at = at
    approval.save(update_fields=["status", "decided_at"])
    ledger_append(
        type=f"controlplane.approval.request.{approval.status}",
        subject=f"approval/{approval.id}",
        data=_event_data(approval, approvals=approval.approvals_count(), quorum=approval.quorum),
        tenant=approval.tenant.slug,
        actor=actor.ref,
        time=at,
        reason_codes=[],
        traceparent=approval.traceparent or None,
    )
    _resolve(approval)
    return approval


@transaction.atomic
def approvals_bulk_decide(
    *,
    items: list[tuple[str, str]],
    actor: Principal,
    decision: str,
    reason: str,
) -> list[ApprovalRequest]:
    """One decision and one reason for several approvals, each named with the content hash its decider saw
    (`(approval id, content hash)` pairs): all of them, or none.

    An id outside the actor's tenant is APPROVAL_NOT_FOUND; any refusal of one decision refuses the whole
    batch with that decision's code, and carries the id at fault in `extra["request"]`. The API and the
    console both call this.
    """
    if len(items) > BULK_LIMIT:
        raise ControlPlaneError("VALIDATION_FAILED", f"at most {BULK_LIMIT} approvals at once")
    visible = {
        approval.pk: approval
        for approval in ApprovalRequest.objects.filter(
            tenant_id=actor.tenant_id, pk__in=[approval_id for approval_id, _ in items]
        )
    }
    decided = []
    for approval_id, content_hash in items:
        approval = visible.get(approval_id)
        if approval is None:
            raise ControlPlaneError("APPROVAL_NOT_FOUND", f"no approval request {approval_id!r}")
        try:
            decided.append(
                approval_decide(
                    approval=approval,
                    actor=actor,
                    decision=decision,
                    reason=reason,
                    content_hash=content_hash,
                )
            )
        except ControlPlaneError as refusal:
            refusal.extra["request"] = approval.pk
            raise
    return decided


@transaction.atomic
def approval_consume(
    *, approval: ApprovalRequest, content_hash: str, at: datetime | None = None
) -> ApprovalRequest:
    """Use a granted approval, once, for exactly the content it approved."""
    at = at or timezone.now()
    approval = _lock(approval)
    if approval.status != ApprovalStatus.APPROVED:
        raise ControlPlaneError("APPROVAL_NOT_GRANTED", f"the request is {approval.status}")
    if content_hash != approval.content_hash:
        raise ControlPlaneError("APPROVAL_CONTENT_CHANGED", "the approval was for other content")
    if approval.consumed_at is not None:
        raise ControlPlaneError("APPROVAL_ALREADY_CONSUMED", "a granted approval is used once")
    approval.consumed_at = at
    approval.save(update_fields=["consumed_at"])
    ledger_append(
        type="controlplane.approval.request.consumed",
        subject=f"approval/{approval.id}",
        data=_event_data(approval),
        tenant=approval.tenant.slug,
        actor="system",
        time=at,
        reason_codes=[],
        traceparent=approval.traceparent or None,
    )
    return approval


@transaction.atomic
def approval_cancel(
    *, approval: ApprovalRequest, actor: str, reason: str, at: datetime | None = None
) -> ApprovalRequest:
    """Withdraw a pending approval, e.g. because its execution ended."""
    at = at or timezone.now()
    approval = _lock(approval)
    if approval.status != ApprovalStatus.PENDING:
        raise ControlPlaneError("APPROVAL_NOT_PENDING", f"the request is {approval.status}")
    approval.cancel()
    approval.decided_at = at
    approval.save(update_fields=["status", "decided_at"])
    ledger_append(
        type="controlplane.approval.request.cancelled",
        subject=f"approval/{approval.id}",
        data=_event_data(approval, reason=reason),
        tenant=approval.tenant.slug,
        actor=actor,
        time=at,
        reason_codes=[],
        traceparent=approval.traceparent or None,
    )
    _resolve(approval)
    return approval


def approvals_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Expire overdue approvals (failing closed) and raise escalation levels as the ladder passes.

    Each approval is handled in its own transaction under a row lock, so running it twice, or from two
    beat processes, changes nothing the second time.
    """
    now = now or timezone.now()
    expired = escalated = 0
    for approval_id in ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).values_list(
        "pk", flat=True
    ):
        with transaction.atomic(), ledger_deferred():  # as approval_decide: the chain's lock last
            approval = (
                ApprovalRequest.objects.select_for_update().select_related("tenant").get(pk=approval_id)
            )
            if approval.status != ApprovalStatus.PENDING:
                continue
            if approval.expires_at and now >= approval.expires_at:
                approval.expire()
                approval.decided_at = now
                approval.save(update_fields=["status", "decided_at"])
                ledger_append(
                    type="controlplane.approval.request.expired",
                    subject=f"approval/{approval.id}",
                    data=_event_data(approval),
                    tenant=approval.tenant.slug,
                    actor="system",
                    time=now,
                    reason_codes=["APPROVAL_EXPIRED"],
                    traceparent=approval.traceparent or None,
                )
                _resolve(approval)
                expired += 1
                continue
            age = (now - approval.created_at).total_seconds()
            level = max(
                (step["level"] for step in approval.escalation_ladder if age >= step["after_seconds"]),
                default=0,
            )
            if level > approval.escalation_level:
                approval.escalation_level = level
                approval.save(update_fields=["escalation_level"])
                ledger_append(
                    type="controlplane.approval.request.escalated",
                    subject=f"approval/{approval.id}",
                    data=_event_data(approval, level=level),
                    tenant=approval.tenant.slug,
                    actor="system",
                    time=now,
                    reason_codes=[],
                    traceparent=approval.traceparent or None,
                )
                escalated += 1
    return {"expired": expired, "escalated": escalated}
