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
from approvals.registry import resolver_for
from controlplane.identity.models import Principal, PrincipalKind
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.batch import ledger_deferred
from controlplane.ledger.services import ledger_append

DECIDE_CAPABILITY = "approvals.decide"


def request_id_for(*, subject_kind: str, subject_id: str, content_hash: str) -> str:
    """Deterministic: the same subject and content always map to the same request."""
    return hashlib.sha256(f"{subject_kind}\n{subject_id}\n{content_hash}".encode()).hexdigest()


def _append(
    request: ApprovalRequest, verb: str, actor: str, data: dict[str, Any], at: datetime, codes=()
) -> None:
    ledger_append(
        type=f"controlplane.approval.request.{verb}",
        subject=f"approval/{request.id}",
        data={
            "request": request.id,
            "subject_kind": request.subject_kind,
            "subject_id": request.subject_id,
            "content_hash": request.content_hash,
            **data,
        },
        tenant=request.tenant.slug,
        actor=actor,
        time=at,
        reason_codes=list(codes),
        traceparent=request.traceparent or None,
    )


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
    request_id = request_id_for(subject_kind=subject_kind, subject_id=subject_id, content_hash=content_hash)
    existing = ApprovalRequest.objects.filter(pk=request_id).first()
    if existing:
        return existing
    request = ApprovalRequest.objects.create(
        id=request_id,
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
    _append(
        request,
        "opened",
        requested_by.ref,
        {"quorum": quorum, "risk_tier": risk_tier, "requested_by": requested_by.ref},
        at,
        reason_codes,
    )
    return request


def _lock(request: ApprovalRequest) -> ApprovalRequest:
    return (
        ApprovalRequest.objects.select_for_update()
        .select_related("tenant", "requested_by")
        .get(pk=request.pk)
    )


def _refuse_unless_may_decide(request: ApprovalRequest, actor: Principal) -> None:
    if actor.tenant_id != request.tenant_id:
        raise ControlPlaneError("NOT_FOUND", "no such approval request in your tenant")
    if actor.kind != PrincipalKind.HUMAN:
        raise ControlPlaneError(
            "APPROVAL_APPROVER_NOT_HUMAN", f"{actor.ref} is a {actor.kind}; only people decide"
        )
    if not actor.has_capability(DECIDE_CAPABILITY):
        raise ControlPlaneError("CAPABILITY_MISSING", f"{actor.ref} lacks {DECIDE_CAPABILITY!r}")
    if actor.pk == request.requested_by_id:
        raise ControlPlaneError("APPROVAL_SELF_APPROVAL", "nobody approves their own request")


def _resolve(request: ApprovalRequest) -> None:
    resolver = resolver_for(request.subject_kind)
    if resolver is not None:
        resolver(request)


@transaction.atomic
@ledger_deferred()  # the chain's lock after the subject's row locks (the resolver's), not before them
def approval_decide(
    *,
    request: ApprovalRequest,
    actor: Principal,
    decision: str,
    reason: str,
    content_hash: str,
    at: datetime | None = None,
) -> ApprovalRequest:
    """Record one person's decision; approve at quorum, reject at the first rejection."""
    at = at or timezone.now()
    request = _lock(request)
    if decision not in ApprovalVote.values:
        raise ControlPlaneError("VALIDATION_FAILED", "decision must be approve or reject")
    if not reason or not reason.strip():
        raise ControlPlaneError("APPROVAL_REASON_REQUIRED", "every decision needs a reason")
    _refuse_unless_may_decide(request, actor)
    if request.status != ApprovalStatus.PENDING:
        code = "APPROVAL_EXPIRED" if request.status == ApprovalStatus.EXPIRED else "APPROVAL_NOT_PENDING"
        raise ControlPlaneError(code, f"the request is {request.status}")
    if request.expires_at and at >= request.expires_at:
        raise ControlPlaneError("APPROVAL_EXPIRED", "the request expired before this decision")
    if content_hash != request.content_hash:
        raise ControlPlaneError(
            "APPROVAL_CONTENT_CHANGED", "what you saw is not what is being approved; reload it"
        )
    try:
        with transaction.atomic():
            ApprovalDecision.objects.create(
                request=request,
                approver=actor,
                decision=decision,
                reason=reason.strip(),
                content_hash=content_hash,
                decided_at=at,
            )
    except IntegrityError as exc:
        raise ControlPlaneError("APPROVAL_DUPLICATE_DECISION", f"{actor.ref} has already decided") from exc
    _append(
        request,
        "decided",
        actor.ref,
        {"decision": decision, "approver": actor.ref, "reason": reason.strip()},
        at,
    )
    if decision == ApprovalVote.REJECT:
        request.reject()
    elif request.quorum_reached():
        request.approve()
    else:
        return request
    request.decided_at = at
    request.save(update_fields=["status", "decided_at"])
    _append(
        request,
        request.status,
        actor.ref,
        {"approvals": request.approvals_count(), "quorum": request.quorum},
        at,
    )
    _resolve(request)
    return request


@transaction.atomic
def approval_consume(
    *, request: ApprovalRequest, content_hash: str, at: datetime | None = None
) -> ApprovalRequest:
    """Use a granted approval, once, for exactly the content it approved."""
    at = at or timezone.now()
    request = _lock(request)
    if request.status != ApprovalStatus.APPROVED:
        raise ControlPlaneError("APPROVAL_NOT_GRANTED", f"the request is {request.status}")
    if content_hash != request.content_hash:
        raise ControlPlaneError("APPROVAL_CONTENT_CHANGED", "the approval was for other content")
    if request.consumed_at is not None:
        raise ControlPlaneError("APPROVAL_ALREADY_CONSUMED", "a granted approval is used once")
    request.consumed_at = at
    request.save(update_fields=["consumed_at"])
    _append(request, "consumed", "system", {}, at)
    return request


@transaction.atomic
def approval_cancel(
    *, request: ApprovalRequest, actor: str, reason: str, at: datetime | None = None
) -> ApprovalRequest:
    at = at or timezone.now()
    request = _lock(request)
    if request.status != ApprovalStatus.PENDING:
        raise ControlPlaneError("APPROVAL_NOT_PENDING", f"the request is {request.status}")
    request.cancel()
    request.decided_at = at
    request.save(update_fields=["status", "decided_at"])
    _append(request, "cancelled", actor, {"reason": reason}, at)
    _resolve(request)
    return request


def approvals_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Expire overdue requests (failing closed) and raise escalation levels as the ladder passes.

    Each request is handled in its own transaction under a row lock, so running it twice, or from two
    beat processes, changes nothing the second time.
    """
    now = now or timezone.now()
    expired = escalated = 0
    for request_id in ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).values_list(
        "pk", flat=True
    ):
        with transaction.atomic(), ledger_deferred():  # as approval_decide: the chain's lock last
            request = ApprovalRequest.objects.select_for_update().select_related("tenant").get(pk=request_id)
            if request.status != ApprovalStatus.PENDING:
                continue
            if request.expires_at and now >= request.expires_at:
                request.expire()
                request.decided_at = now
                request.save(update_fields=["status", "decided_at"])
                _append(request, "expired", "system", {}, now, ["APPROVAL_EXPIRED"])
                _resolve(request)
                expired += 1
                continue
            age = (now - request.created_at).total_seconds()
            level = max(
                (step["level"] for step in request.escalation_ladder if age >= step["after_seconds"]),
                default=0,
            )
            if level > request.escalation_level:
                request.escalation_level = level
                request.save(update_fields=["escalation_level"])
                _append(request, "escalated", "system", {"level": level}, now)
                escalated += 1
    return {"expired": expired, "escalated": escalated}
