"""Silences: matchers and a time range that suppress matching signals (each records its silence).

A silence needs at least one matcher, an end after its start and after now, and lasts at most
`CONTROLPLANE_SILENCE_MAX_SECONDS`. Its criticality is the highest severity it could hide: the implied
severity of every current rule that can match its service, and the severity of the service's open
incidents. Silencing at `high` or `critical` needs approval (approval subject `incidents.silence`,
quorum 1 for high and 2 for critical); the silence is `pending_approval` until people grant it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStatus
from controlplane.identity.models import Principal
from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from incidents.models import OPEN_STATUSES, Incident, Silence, SilenceStatus, severity_max
from incidents.services.common import format_time, require_human, require_reason
from incidents.services.rules import current_rule_versions

APPROVAL_SUBJECT = "incidents.silence"
NEEDS_APPROVAL = ("high", "critical")


def _refuse(field: str, detail: str, code: str = "SILENCE_INVALID") -> ControlPlaneError:
    return ControlPlaneError(code, f"{field}: {detail}", extra={"field": field})


def silence_criticality(*, tenant_id: int, service: str) -> str:
    """The highest severity a silence of `service` ("" = every service) could hide."""
    severities = ["info"]
    for rv in current_rule_versions(tenant=tenant_id):
        if not service or not rv.match_service or rv.match_service == service:
            severities.append(rv.severity)
    incidents = Incident.objects.filter(tenant_id=tenant_id, status__in=OPEN_STATUSES)
    if service:
        incidents = incidents.filter(service=service)
    severities.extend(incidents.values_list("severity", flat=True))
    return severity_max(*severities)


def _content(silence: Silence) -> dict:
    return {
        "silence": silence.id,
        "tenant": silence.tenant.slug,
        "match": {
            "service": silence.match_service,
            "name": silence.match_name,
            "labels": silence.match_labels,
        },
        "starts_at": format_time(silence.starts_at),
        "ends_at": format_time(silence.ends_at),
        "reason": silence.reason,
        "criticality": silence.criticality,
        "created_by": silence.created_by.ref,
    }


@transaction.atomic
def silence_create(
    *,
    actor: Principal,
    reason: str,
    ends_at: datetime,
    starts_at: datetime | None = None,
    match_service: str = "",
    match_name: str = "",
    match_labels: dict[str, str] | None = None,
    at: datetime | None = None,
) -> Silence:
    """Create a silence (active at once, or pending approval when it could hide high/critical signals)."""
    require_human(actor, tenant_id=actor.tenant_id, what="silence signals")
    reason = require_reason(reason, "a silence")
    at = at or timezone.now()
    starts_at = starts_at or at
    match_service, match_name, labels = _matchers_or_refuse(match_service, match_name, match_labels)
    _window_or_refuse(starts_at=starts_at, ends_at=ends_at, at=at)
    criticality = silence_criticality(tenant_id=actor.tenant_id, service=match_service)
    identity = {
        "tenant": actor.tenant.slug,
        "match": {"service": match_service, "name": match_name, "labels": labels},
        "starts_at": format_time(starts_at),
        "ends_at": format_time(ends_at),
        "created_by": actor.ref,
        "created_at": format_time(at),
    }
    silence = Silence(
        id=hashlib.sha256(canonical_bytes(identity)).hexdigest(),
        tenant=actor.tenant,
        match_service=match_service,
        match_name=match_name,
        match_labels=labels,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        created_by=actor,
        created_at=at,
        criticality=criticality,
        status=SilenceStatus.PENDING_APPROVAL if criticality in NEEDS_APPROVAL else SilenceStatus.ACTIVE,
    )
    content = _content(silence)
    silence.content_hash = hashlib.sha256(canonical_bytes(content)).hexdigest()
    if Silence.objects.filter(pk=silence.id).exists():
        return Silence.objects.get(pk=silence.id)
    silence.save(force_insert=True)
    codes = ["SILENCE_REQUIRES_APPROVAL"] if silence.status == SilenceStatus.PENDING_APPROVAL else []
    ledger_append(
        type="controlplane.silence.created",
        subject=f"silence/{silence.id}",
        data={**content, "status": silence.status, "content_hash": silence.content_hash},
        tenant=actor.tenant.slug,
        actor=actor.ref,
        time=at,
        reason_codes=codes,
    )
    if codes:
        silence.approval = _approval_open(silence=silence, content=content, actor=actor, codes=codes, at=at)
        silence.save(update_fields=["approval"])
    return silence


def _matchers_or_refuse(
    match_service: str, match_name: str, match_labels: dict[str, str] | None
) -> tuple[str, str, dict[str, str]]:
    """The silence's matchers, stripped; SILENCE_INVALID unless the labels are strings and one is set."""
    labels = match_labels or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise _refuse("match_labels", "must be an object of strings")
    match_service, match_name = (match_service or "").strip(), (match_name or "").strip()
    if not (match_service or match_name or labels):
        raise _refuse("match_service", "a silence needs at least one matcher (service, name or a label)")
    return match_service, match_name, labels


def _window_or_refuse(*, starts_at: datetime, ends_at: datetime, at: datetime) -> None:
    """SILENCE_INVALID unless the silence ends after it starts and after now; SILENCE_TOO_LONG past the
    limit."""
    if ends_at <= starts_at:
        raise _refuse("ends_at", "must be after starts_at")
    if ends_at <= at:
        raise _refuse("ends_at", "must be in the future")
    limit = settings.CONTROLPLANE_SILENCE_MAX_SECONDS
    if (ends_at - starts_at).total_seconds() > limit:
        raise _refuse("ends_at", f"a silence lasts at most {limit} seconds", code="SILENCE_TOO_LONG")


def _approval_open(
    *, silence: Silence, content: dict, actor: Principal, codes: list[str], at: datetime
) -> ApprovalRequest:
    """The approval a silence that could hide high or critical signals waits for (quorum 2 for critical)."""
    from approvals.services import approval_request_open

    return approval_request_open(
        subject_kind=APPROVAL_SUBJECT,
        subject_id=silence.id,
        content_hash=silence.content_hash,
        requested_by=actor,
        risk_tier=silence.criticality,
        quorum=2 if silence.criticality == "critical" else 1,
        summary={
            "what": "silence",
            "service": silence.match_service or "(every service)",
            "name": silence.match_name,
            "labels": silence.match_labels,
            "starts_at": content["starts_at"],
            "ends_at": content["ends_at"],
            "criticality": silence.criticality,
            "reason": silence.reason,
        },
        reason_codes=codes,
        at=at,
    )


def resolve_silence_approval(approval: ApprovalRequest) -> None:
    """The approvals app calls this when a silence's approval is final: approved activates it (the grant
    is consumed once, bound to the content hash); rejected, expired or cancelled rejects it."""
    from approvals.services import approval_consume

    silence = Silence.objects.select_for_update().select_related("tenant").get(pk=approval.subject_id)
    if silence.status != SilenceStatus.PENDING_APPROVAL:
        return
    at = approval.decided_at or timezone.now()
    if approval.status == ApprovalStatus.APPROVED:
        approval_consume(approval=approval, content_hash=silence.content_hash, at=at)
        silence.activate()
        verb, codes = "activated", []
    else:
        silence.reject()
        verb, codes = "rejected", [f"APPROVAL_{approval.status.upper()}"]
    silence.save(update_fields=["status"])
    ledger_append(
        type=f"controlplane.silence.{verb}",
        subject=f"silence/{silence.id}",
        data={"silence": silence.id, "approval": approval.id, "status": silence.status},
        tenant=silence.tenant.slug,
        actor=f"approval/{approval.id}",
        time=at,
        reason_codes=codes,
    )


@transaction.atomic
def silence_expire(*, silence: Silence, actor: Principal, reason: str, at: datetime | None = None) -> Silence:
    """End an active silence now: from now on it matches nothing (signals it already suppressed keep
    naming it). A silence that is not active is refused with SILENCE_NOT_ACTIVE."""
    silence = Silence.objects.select_for_update().select_related("tenant").get(pk=silence.pk)
    require_human(actor, tenant_id=silence.tenant_id, what="silence signals")
    reason = require_reason(reason, "expiring a silence")
    at = at or timezone.now()
    if silence.status != SilenceStatus.ACTIVE or silence.ends_at <= at:
        raise ControlPlaneError("SILENCE_NOT_ACTIVE", f"the silence is {silence_state(silence, at)}")
    silence.expire()
    silence.ends_at = max(at, silence.starts_at)
    silence.save(update_fields=["status", "ends_at"])
    ledger_append(
        type="controlplane.silence.expired",
        subject=f"silence/{silence.id}",
        data={"silence": silence.id, "reason": reason, "ends_at": format_time(silence.ends_at)},
        tenant=silence.tenant.slug,
        actor=actor.ref,
        time=at,
    )
    return silence


def silence_state(silence: Silence, at: datetime | None = None) -> str:
    """What a person sees: pending_approval, rejected, scheduled, active or expired (by the clock)."""
    at = at or timezone.now()
    if silence.status != SilenceStatus.ACTIVE:
        return silence.status
    if at < silence.starts_at:
        return "scheduled"
    return "active" if at < silence.ends_at else "expired"


def silences_active_q(at: datetime) -> Q:
    return Q(status=SilenceStatus.ACTIVE, starts_at__lte=at, ends_at__gt=at)
