"""Hybrid quarantine: the review queue's decisions, a person's quarantine, and release through an approval.

- High-severity failures are quarantined by the supervisor itself (supervision.py).
- Low-severity degradations open a `ReviewItem`; an operator holding `plugins.review` quarantines the plugin
  or dismisses the item, always with a reason (one by one or in bulk, as the approval queue decides).
- Release is the approval subject `plugins.release`: the request is bound to the quarantine's evidence
  (the hash of the ledger event that quarantined it, the codes and the evidence shown) and its quorum comes
  from the active policy profile by the quarantine's severity (the tier of that name: its quorum when the
  tier is `assist`, otherwise 1, or 2 for critical). On approval the plugin returns to `unknown` and needs
  fresh evidence -- heartbeats, probes -- before it is dispatchable again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStatus
from approvals.services import approval_consume, approval_request_open
from controlplane.identity.models import Principal, PrincipalKind
from controlplane.kernel.canonical import canonical_bytes, format_time
from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy.selectors import active_profile
from plugins.models import Plugin, PluginState, ReviewItem, ReviewStatus
from plugins.services.common import actor_ref, append, authorize, plugin_lock, reason_required

RELEASE_SUBJECT = "plugins.release"
REVIEW_BULK_LIMIT = 200


def _human(actor: Principal | str, what: str) -> None:
    if isinstance(actor, Principal) and actor.kind != PrincipalKind.HUMAN:
        raise ControlPlaneError(
            "APPROVAL_APPROVER_NOT_HUMAN", f"{actor.ref} is a {actor.kind}; only people {what}"
        )


def _quarantine(
    plugin: Plugin, *, code: str, detail: str, severity: str, actor: str, at: datetime, extra=None
):
    previous = plugin.state
    plugin.quarantine()
    plugin.state_codes, plugin.state_detail = [code], detail[:300]
    plugin.state_since, plugin.severity = at, severity
    event = append(
        plugin,
        "quarantined",
        {"from": previous, "detail": detail, "severity": severity, **(extra or {})},
        actor=actor,
        at=at,
        codes=[code],
    )
    plugin.quarantine_event = event.hash
    plugin.save(
        update_fields=["state", "state_codes", "state_detail", "state_since", "severity", "quarantine_event"]
    )


@transaction.atomic
def plugin_quarantine(
    *, name: str, actor: Principal | str, reason: str, severity: str = "medium", at: datetime | None = None
) -> Plugin:
    """A person quarantines a plugin (PLUGIN_QUARANTINED_BY_REVIEW); its open review items are closed."""
    reason = reason_required(reason)
    _human(actor, "quarantine plugins")
    plugin = plugin_lock(name=name, actor=actor)
    authorize(actor=actor, tenant=plugin.tenant, detail="shared plugins are quarantined by the platform")
    if plugin.state == PluginState.QUARANTINED:
        raise ControlPlaneError("PLUGIN_ALREADY_QUARANTINED", f"plugin {name} is quarantined already")
    at = at or timezone.now()
    _quarantine(
        plugin,
        code="PLUGIN_QUARANTINED_BY_REVIEW",
        detail=f"quarantined by {actor_ref(actor)}: {reason}",
        severity=severity,
        actor=actor_ref(actor),
        at=at,
        extra={"reason": reason},
    )
    return plugin


def _item_lock(item_id: int, actor: Principal | str) -> ReviewItem:
    item = ReviewItem.objects.select_for_update(of=("self",)).select_related("plugin", "plugin__tenant")
    item = item.filter(pk=item_id).first()
    if item is None or (
        isinstance(actor, Principal) and item.plugin.tenant_id not in (None, actor.tenant_id)
    ):
        raise ControlPlaneError("NOT_FOUND", f"no review item {item_id} in your tenant")
    return item


@transaction.atomic
def review_decide(
    *, item_id: int, actor: Principal | str, decision: str, reason: str, at: datetime | None = None
) -> ReviewItem:
    """Quarantine the plugin behind a review item, or dismiss the item; with a reason, by a person."""
    reason = reason_required(reason)
    _human(actor, "decide reviews")
    if decision not in ("quarantine", "dismiss"):
        raise ControlPlaneError("VALIDATION_FAILED", "decision is quarantine or dismiss")
    item = _item_lock(item_id, actor)
    authorize(actor=actor, tenant=item.plugin.tenant, detail="shared plugins are reviewed by the platform")
    if item.status != ReviewStatus.OPEN:
        raise ControlPlaneError("PLUGIN_REVIEW_NOT_OPEN", f"review item {item_id} is {item.status}")
    at = at or timezone.now()
    plugin = plugin_lock(name=item.plugin.name)
    if decision == "quarantine":
        item.decide_quarantine()
        if plugin.state != PluginState.QUARANTINED:
            _quarantine(
                plugin,
                code="PLUGIN_QUARANTINED_BY_REVIEW",
                detail=f"{item.code} reviewed by {actor_ref(actor)}: {reason}",
                severity=item.severity,
                actor=actor_ref(actor),
                at=at,
                extra={"reason": reason, "item": item.pk, "evidence_sha256": item.evidence_hash},
            )
    else:
        item.dismiss()
    item.decided_at, item.decided_by, item.reason = at, actor_ref(actor), reason
    item.save(update_fields=["status", "decided_at", "decided_by", "reason"])
    append(
        plugin,
        "review.decided",
        {"item": item.pk, "decision": decision, "reason": reason, "evidence_sha256": item.evidence_hash},
        actor=actor_ref(actor),
        at=at,
        codes=[item.code],
    )
    return item


def review_decide_bulk(
    *, item_ids: list[int], actor: Principal | str, decision: str, reason: str
) -> list[dict[str, Any]]:
    """Decide several items alike, each in its own transaction; every outcome is reported."""
    if len(item_ids) > REVIEW_BULK_LIMIT:
        raise ControlPlaneError("VALIDATION_FAILED", f"at most {REVIEW_BULK_LIMIT} items at once")
    outcomes = []
    for item_id in item_ids:
        try:
            item = review_decide(item_id=item_id, actor=actor, decision=decision, reason=reason)
            outcomes.append({"item": item_id, "status": item.status})
        except ControlPlaneError as error:
            outcomes.append({"item": item_id, "code": error.code, "detail": error.detail})
    return outcomes


# --- release --------------------------------------------------------------------------------------------


def release_content(plugin: Plugin) -> dict[str, Any]:
    """What a release approval is bound to: the quarantine and the evidence shown."""
    return {
        "plugin": plugin.name,
        "version": plugin.version,
        "manifest_sha256": plugin.manifest_hash,
        "quarantine_event": plugin.quarantine_event,
        "codes": list(plugin.state_codes),
        "detail": plugin.state_detail,
        "severity": plugin.severity,
        "since": format_time(plugin.state_since),
    }


def release_hash(plugin: Plugin) -> str:
    return hashlib.sha256(canonical_bytes(release_content(plugin))).hexdigest()


def release_quorum(severity: str) -> int:
    """The quorum of the active policy profile's tier named by the severity (fail closed: POLICY_MISSING)."""
    profile = active_profile(environment=settings.CONTROLPLANE_ENV)
    if profile is None:
        raise ControlPlaneError("POLICY_MISSING", "no active policy profile gives the release quorum")
    tier = severity if severity in profile.content["tiers"] else "high"
    spec = profile.content["tiers"][tier]
    if spec.get("mode") == "assist":
        return int(spec["quorum"])
    return 2 if tier == "critical" else 1


@transaction.atomic
def plugin_release_request(*, name: str, actor: Principal, reason: str) -> ApprovalRequest:
    """Ask people to release a quarantined plugin; the request is bound to the quarantine's evidence."""
    reason = reason_required(reason)
    plugin = plugin_lock(name=name, actor=actor)
    authorize(actor=actor, tenant=plugin.tenant, detail="shared plugins are released by the platform")
    if plugin.state != PluginState.QUARANTINED:
        raise ControlPlaneError("PLUGIN_NOT_QUARANTINED", f"plugin {name} is {plugin.state}")
    content = release_content(plugin)
    return approval_request_open(
        subject_kind=RELEASE_SUBJECT,
        subject_id=plugin.name,
        content_hash=release_hash(plugin),
        requested_by=actor,
        risk_tier=plugin.severity if plugin.severity in ("low", "medium", "high", "critical") else "high",
        quorum=release_quorum(plugin.severity),
        summary={**content, "reason": reason},
        reason_codes=list(plugin.state_codes),
    )


def plugin_release_resolve(approval: ApprovalRequest) -> None:
    """The approvals resolver: on approval, release the plugin if its quarantine is the one approved."""
    if approval.status != ApprovalStatus.APPROVED:
        return
    plugin = plugin_lock(name=approval.subject_id)
    if plugin.state != PluginState.QUARANTINED or release_hash(plugin) != approval.content_hash:
        raise ControlPlaneError(
            "PLUGIN_RELEASE_EVIDENCE_CHANGED", f"plugin {plugin.name}'s quarantine is not the one approved"
        )
    at = approval.decided_at or timezone.now()
    approval_consume(approval=approval, content_hash=approval.content_hash, at=at)
    previous_codes = list(plugin.state_codes)
    plugin.release()
    plugin.state_codes, plugin.state_detail = ["PLUGIN_RELEASED"], "released; waiting for fresh evidence"
    plugin.state_since = plugin.evidence_since = at
    plugin.severity = plugin.quarantine_event = ""
    # Fresh evidence only: what was counted before the release does not count after it.
    plugin.violations, plugin.last_violation, plugin.restarts, plugin.probes = 0, {}, [], []
    plugin.backoff_seconds, plugin.next_restart_at, plugin.healthy_since, plugin.blocked_since = (
        0,
        None,
        None,
        None,
    )
    plugin.save()
    append(
        plugin,
        "released",
        {
            "approval": approval.pk,
            "content_sha256": approval.content_hash,
            "quarantine_codes": previous_codes,
            "reason": approval.summary.get("reason", "approved"),
        },
        actor=f"approval/{approval.pk}",
        at=at,
        codes=["PLUGIN_RELEASED"],
    )
