"""Approval subjects owned by apps *below* approvals in the dependency order (they cannot import it).

`policy.activate`: activating a policy profile is a change people approve. The request is bound to the
profile's content hash; on approval the profile is activated with that hash (`expected_hash`), so a
profile whose content differs from what was approved cannot slip through.
"""

from __future__ import annotations

from approvals.models import ApprovalRequest, ApprovalStatus
from approvals.services import approval_consume, approval_request_open
from controlplane.identity.models import Principal
from controlplane.policy.models import PolicyProfile
from controlplane.policy.services import profile_activate

POLICY_ACTIVATE = "policy.activate"


def policy_activation_request(
    *, profile: PolicyProfile, requested_by: Principal, reason: str
) -> ApprovalRequest:
    """Ask people to activate this exact profile version (quorum 2 in prod, 1 elsewhere)."""
    return approval_request_open(
        subject_kind=POLICY_ACTIVATE,
        subject_id=str(profile.pk),
        content_hash=profile.content_hash,
        requested_by=requested_by,
        risk_tier="critical" if profile.environment == "prod" else "high",
        quorum=2 if profile.environment == "prod" else 1,
        summary={
            "profile": profile.name,
            "version": profile.version,
            "environment": profile.environment,
            "content_hash": profile.content_hash,
            "reason": reason,
        },
        reason_codes=["POLICY_REQUIRES_APPROVAL"],
    )


def resolve_policy_activation(approval: ApprovalRequest) -> None:
    if approval.status != ApprovalStatus.APPROVED:
        return
    profile = PolicyProfile.objects.get(pk=int(approval.subject_id))
    approval_consume(approval=approval, content_hash=approval.content_hash, at=approval.decided_at)
    profile_activate(
        profile=profile,
        actor=f"approval/{approval.pk}",
        reason=approval.summary.get("reason", "approved"),
        expected_hash=approval.content_hash,
    )
