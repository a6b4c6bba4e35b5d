"""Installing skills (directly for the installation, as a `skills.install` approval for a person), the
approval's resolver, disabling and enabling."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from skills import envelopes
from skills.core import executor_name
from skills.models import (
    ActionContract,
    InstallRequest,
    InstallStatus,
    Skill,
    SkillStatus,
    TrustRevision,
)
from skills.selectors import install_review
from skills.services.common import INSTALL_SUBJECT, _actor, _append, _authorize, _reason_required
from skills.verification import envelope_check, installed_check, manifest_hash


def _reject(
    *,
    envelope: Any,
    codes: list[str],
    detail: str,
    actor: str,
    at: datetime,
    manifest: dict | None,
    bundle: dict[str, str] | None = None,
):
    data = {
        "envelope_sha256": envelopes.envelope_hash(envelope) if isinstance(envelope, dict) else "",
        "skill": (manifest or {}).get("name", ""),
        "version": (manifest or {}).get("version", ""),
        "detail": detail,
        # what the decision was taken on, so replay takes it again (skills/replay.py)
        "envelope": envelope if isinstance(envelope, dict) else None,
        "bundle": dict(bundle or {}),
    }
    with transaction.atomic():
        _append("skill.rejected", f"skill/{data['skill'] or 'unknown'}", data, actor, at, codes)


def skill_install(
    *,
    envelope: Any,
    actor: str,
    reason: str,
    at: datetime | None = None,
    bundle: dict[str, str] | None = None,
) -> tuple[Skill, dict[str, Any]]:
    """Verify a DSSE-signed skill as of `at` (now) and install it: its actions become resolvable and the
    version it upgrades is superseded. Returns the skill and the install review (what it newly allows).

    The actor is the installation itself (a migration, the demo) or a granted `skills.install` approval
    (`approval/<id>`); a person asks with `skill_install_request` (SKILL_INSTALL_NEEDS_APPROVAL otherwise).
    A refusal raises the first failing check's code, records `controlplane.skill.rejected` with every
    failing code, and installs nothing."""
    if isinstance(actor, Principal):
        raise ControlPlaneError(
            "SKILL_INSTALL_NEEDS_APPROVAL", "a person's install is a skills.install approval request"
        )
    _reason_required(reason)
    at = at or timezone.now()
    try:
        with transaction.atomic():
            return _install(envelope=envelope, actor=actor, reason=reason, at=at, bundle=bundle)
    except _Refused as refused:
        _reject(
            envelope=envelope,
            codes=refused.codes,
            detail=refused.error.detail,
            actor=actor,
            at=at,
            manifest=refused.manifest,
            bundle=bundle,
        )
        raise refused.error from None


def _install_quorum(tier: str) -> int:
    """The quorum the active policy profile gives the tier (at least 1; at least 2 for critical)."""
    from django.conf import settings

    from controlplane.policy.selectors import active_profile

    profile = active_profile(environment=settings.CONTROLPLANE_ENV)
    if profile is None:
        raise ControlPlaneError("POLICY_MISSING", "no active policy profile gives the install its quorum")
    quorum = int(profile.content.get("tiers", {}).get(tier, {}).get("quorum", 0) or 0)
    return max(quorum, 2 if tier == "critical" else 1)


def skill_install_request(
    *,
    envelope: Any,
    actor: Principal,
    reason: str,
    at: datetime | None = None,
    bundle: dict[str, str] | None = None,
) -> InstallRequest:
    """A person asks to install a skill: every check runs now (a refusal is ledgered as
    `controlplane.skill.rejected` and raised, as `skill_install` does), then a `skills.install` approval
    request is opened, bound to the envelope's hash, with the install review (the diff against the
    installed version) as what the approvers see. Quorum: the active profile's for the skill's highest
    risk tier. On approval the resolver verifies again and installs (`install_approval_resolve`).

    Asking again for the same envelope returns the request already open."""
    _authorize(actor, "skills are installation-wide")
    _reason_required(reason)
    at = at or timezone.now()
    result = envelope_check(envelope=envelope, at=at, bundle=bundle)
    if not result.ok:
        error = result.refusal()
        _reject(
            envelope=envelope,
            codes=result.codes,
            detail=error.detail,
            actor=actor.ref,
            at=at,
            manifest=result.manifest,
            bundle=bundle,
        )
        raise error
    from approvals.services import approval_request_open

    manifest = result.manifest
    digest = envelopes.envelope_hash(envelope)
    installed = _current(manifest["name"])
    review = install_review(manifest=manifest, installed=installed)
    with transaction.atomic():
        approval = approval_request_open(
            subject_kind=INSTALL_SUBJECT,
            subject_id=digest,
            content_hash=digest,
            requested_by=actor,
            risk_tier=review["highest_risk_tier"],
            quorum=_install_quorum(review["highest_risk_tier"]),
            summary={
                "skill": manifest["name"],
                "version": manifest["version"],
                "publisher": manifest["publisher"],
                "envelope_sha256": digest,
                "signed_by": result.signed_by,
                "reason": reason,
                "review": review,
            },
            reason_codes=["SKILL_INSTALL_NEEDS_APPROVAL"],
            at=at,
        )
        request, created = InstallRequest.objects.get_or_create(
            id=approval.id,
            defaults={
                "envelope": envelope,
                "envelope_hash": digest,
                "manifest": manifest,
                "review": review,
                "reason": reason,
                "requested_by": actor.ref,
                "created_at": at,
                "bundle": dict(bundle or {}),
            },
        )
        if created:
            _append(
                "skill.install_requested",
                f"skill/{manifest['name']}",
                {
                    "skill": manifest["name"],
                    "version": manifest["version"],
                    "envelope_sha256": digest,
                    "approval": approval.id,
                    "review": review,
                    "reason": reason,
                },
                actor.ref,
                at,
            )
    return request


def _current(name: str) -> Skill | None:
    return (
        Skill.objects.filter(
            name=name, status__in=[SkillStatus.INSTALLED, SkillStatus.DISABLED, SkillStatus.QUARANTINED]
        )
        .order_by("-installed_at")
        .first()
    )


def install_approval_resolve(approval: Any) -> None:
    """The `skills.install` resolver, inside the deciding transaction: on approval, verify again as of the
    decision and install (actor `approval/<id>`); a check failing by then (a key revoked meanwhile) refuses
    it (`skill.rejected`, request `refused`). Rejected, expired or cancelled: the request is closed and
    `skill.rejected` records the approval's outcome. Nothing raises: the decision itself always commits."""
    from approvals.models import ApprovalStatus
    from approvals.services import approval_consume

    request = InstallRequest.objects.select_for_update().filter(pk=approval.pk).first()
    if request is None or request.status != InstallStatus.PENDING:
        return
    at = approval.decided_at or timezone.now()
    actor = f"approval/{approval.pk}"
    request.decided_at = at
    if approval.status != ApprovalStatus.APPROVED:
        code = {
            ApprovalStatus.EXPIRED: "APPROVAL_EXPIRED",
            ApprovalStatus.CANCELLED: "APPROVAL_CANCELLED",
        }.get(approval.status, "APPROVAL_REJECTED")
        request.status, request.status_codes = InstallStatus.REJECTED, [code]
        request.save(update_fields=["status", "status_codes", "decided_at"])
        _reject(
            envelope=request.envelope,
            codes=[code],
            detail=f"the install approval was {approval.status}",
            actor=actor,
            at=at,
            manifest=request.manifest,
        )
        return
    approval_consume(approval=approval, content_hash=request.envelope_hash, at=at)
    try:
        with transaction.atomic():
            skill, _ = _install(
                envelope=request.envelope,
                actor=actor,
                reason=request.reason,
                at=at,
                bundle=request.bundle,
            )
    except _Refused as refused:
        request.status, request.status_codes = InstallStatus.REFUSED, refused.codes
        request.save(update_fields=["status", "status_codes", "decided_at"])
        _reject(
            envelope=request.envelope,
            codes=refused.codes,
            detail=refused.error.detail,
            actor=actor,
            at=at,
            manifest=refused.manifest,
            bundle=request.bundle,
        )
        return
    request.status, request.skill = InstallStatus.INSTALLED, skill
    request.save(update_fields=["status", "skill", "decided_at"])


class _Refused(Exception):
    def __init__(self, error: ControlPlaneError, codes: list[str], manifest: dict | None):
        self.error, self.codes, self.manifest = error, codes, manifest


def _install(
    *, envelope: Any, actor: str, reason: str, at: datetime, bundle: dict[str, str] | None = None
) -> tuple[Skill, dict[str, Any]]:
    TrustRevision.objects.select_for_update().get_or_create(pk=1)  # one install or trust change at a time
    result = envelope_check(envelope=envelope, at=at, bundle=bundle)
    if not result.ok:
        raise _Refused(result.refusal(), result.codes, result.manifest)
    manifest = result.manifest
    previous = (
        Skill.objects.select_for_update()
        .filter(
            name=manifest["name"],
            status__in=[SkillStatus.INSTALLED, SkillStatus.DISABLED, SkillStatus.QUARANTINED],
        )
        .first()
    )
    review = install_review(manifest=manifest, installed=previous)
    if previous is not None:
        previous.status = SkillStatus.SUPERSEDED
        previous.save(update_fields=["status"])
    revision = TrustRevision.objects.get(pk=1).revision
    skill = Skill.objects.create(
        name=manifest["name"],
        version=manifest["version"],
        publisher=manifest["publisher"],
        manifest=manifest,
        manifest_hash=manifest_hash(manifest),
        envelope=envelope,
        envelope_hash=envelopes.envelope_hash(envelope),
        signed_by=result.signed_by,
        verified_revision=revision,
        installed_at=at,
        installed_by=actor,
    )
    for action in manifest["actions"]:
        ActionContract.objects.create(
            skill=skill,
            name=action["name"],
            version=action["version"],
            description=action.get("description", ""),
            input_schema=action["input_schema"],
            output_schema=action["output_schema"],
            risk_tier=action["risk_tier"],
            executor=executor_name(action),
            capabilities=action.get("capabilities", []),
            blast_radius=action.get("blast_radius", {}),
            compensating_action=action.get("compensating_action"),
        )
    _append(
        "skill.installed",
        f"skill/{skill.name}",
        {
            "skill": skill.name,
            "version": skill.version,
            "publisher": skill.publisher,
            "manifest_sha256": skill.manifest_hash,
            "envelope_sha256": skill.envelope_hash,
            "signed_by": skill.signed_by,
            "revision": revision,
            "supersedes": previous.version if previous else None,
            "review": review,
            "reason": reason,
            "envelope": envelope,
            "bundle": dict(bundle or {}),
        },
        actor,
        at,
    )
    return skill, review


@transaction.atomic
def skill_disable(*, name: str, actor: Principal | str, reason: str, at: datetime | None = None) -> Skill:
    """Disable the installed version of a skill: its actions stop compiling and dispatching
    (SKILL_NOT_ACTIVE); its steps not yet dispatched are held (SKILL_DISABLED) until it is enabled again."""
    _authorize(actor, "skills are installation-wide")
    _reason_required(reason)
    at = at or timezone.now()
    skill = (
        Skill.objects.select_for_update()
        .filter(name=name)
        .exclude(status=SkillStatus.SUPERSEDED)
        .order_by("-installed_at")
        .first()
    )
    if skill is None:
        raise ControlPlaneError("SKILL_NOT_FOUND", f"no installed skill {name!r}")
    if skill.status == SkillStatus.DISABLED:
        raise ControlPlaneError("SKILL_ALREADY_DISABLED", f"{skill} is disabled already")
    skill.status, skill.status_reason = SkillStatus.DISABLED, reason
    skill.save(update_fields=["status", "status_reason"])
    _append(
        "skill.disabled",
        f"skill/{skill.name}",
        {"skill": skill.name, "version": skill.version, "reason": reason},
        _actor(actor),
        at,
    )
    return skill


@transaction.atomic
def skill_enable(*, name: str, actor: Principal | str, reason: str, at: datetime | None = None) -> Skill:
    """Enable a disabled skill again, after re-verifying it against the trust store now (a skill that no
    longer verifies stays disabled, with the failing check's code). Its held steps resume: the runtime's
    skill gate lets them go and the sweeper dispatches them."""
    _authorize(actor, "skills are installation-wide")
    _reason_required(reason)
    at = at or timezone.now()
    skill = (
        Skill.objects.select_for_update()
        .filter(name=name)
        .exclude(status=SkillStatus.SUPERSEDED)
        .order_by("-installed_at")
        .first()
    )
    if skill is None:
        raise ControlPlaneError("SKILL_NOT_FOUND", f"no installed skill {name!r}")
    if skill.status != SkillStatus.DISABLED:
        raise ControlPlaneError("SKILL_NOT_DISABLED", f"{skill} is {skill.status}")
    result = installed_check(skill=skill, now=at)
    if not result.ok:
        raise result.refusal()
    skill.status, skill.status_reason = SkillStatus.INSTALLED, ""
    skill.verified_revision = TrustRevision.objects.get_or_create(pk=1)[0].revision
    skill.save(update_fields=["status", "status_reason", "verified_revision"])
    _append(
        "skill.enabled",
        f"skill/{skill.name}",
        {"skill": skill.name, "version": skill.version, "reason": reason},
        _actor(actor),
        at,
    )
    return skill
