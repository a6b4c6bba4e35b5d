"""Detection rules: every change is a new immutable version, ledgered; decisions name the version."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from controlplane.identity.models import Principal, Tenant
from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from incidents.models import SEVERITY_RANK, DetectionRule, DetectionRuleVersion
from incidents.services.common import actor_ref

MAX_WINDOW_SECONDS = 7 * 24 * 3600
MAX_THRESHOLD = 10_000


@dataclass(frozen=True)
class RuleContent:
    """What an administrator sets; validated by `rule_content_validate`."""

    match_service: str = ""
    match_name: str = ""
    match_labels: dict[str, str] | None = None
    min_severity: str = "info"
    threshold: int = 1
    window_seconds: int = 300
    severity: str = "medium"
    precision_bp: int = 8000
    enabled: bool = True


def _refuse(field: str, detail: str) -> ControlPlaneError:
    return ControlPlaneError("RULE_INVALID", f"{field}: {detail}", extra={"field": field})


def rule_content_validate(content: RuleContent) -> dict[str, Any]:
    """The canonical content dict of a version, or RULE_INVALID naming the field at fault."""
    labels = content.match_labels or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise _refuse("match_labels", "must be an object of strings")
    for field, value in (("min_severity", content.min_severity), ("severity", content.severity)):
        if value not in SEVERITY_RANK:
            raise _refuse(field, f"must be one of {', '.join(SEVERITY_RANK)}")
    for field, value, low, high in (
        ("threshold", content.threshold, 1, MAX_THRESHOLD),
        ("window_seconds", content.window_seconds, 1, MAX_WINDOW_SECONDS),
        ("precision_bp", content.precision_bp, 0, 10_000),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _refuse(field, f"must be an integer from {low} to {high}")
    for field, value in (("match_service", content.match_service), ("match_name", content.match_name)):
        if not isinstance(value, str) or len(value) > 200:
            raise _refuse(field, "must be a string of at most 200 characters")
    return {
        "enabled": bool(content.enabled),
        "match": {
            "service": content.match_service.strip(),
            "name": content.match_name.strip(),
            "labels": labels,
            "min_severity": content.min_severity,
        },
        "threshold": content.threshold,
        "window_seconds": content.window_seconds,
        "severity": content.severity,
        "precision_bp": content.precision_bp,
    }


def rule_version_id(*, tenant: str, name: str, version: int, content: dict[str, Any]) -> str:
    body = {"tenant": tenant, "name": name, "version": version, "content": content}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


@transaction.atomic
def rule_version_create(
    *,
    tenant: Tenant,
    name: str,
    content: RuleContent,
    actor: Principal | str,
    reason: str = "",
    at: datetime | None = None,
) -> DetectionRuleVersion:
    """Make `content` the current version of rule `name` (creating the rule at version 1).

    Content equal to the current version's returns that version and writes nothing. Older versions
    never change: evidence and decisions made with them keep naming them.
    """
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise _refuse("name", "is required (at most 100 characters)")
    data = rule_content_validate(content)
    at = at or timezone.now()
    rule, _ = DetectionRule.objects.select_for_update().get_or_create(
        tenant=tenant, name=name, defaults={"created_at": at}
    )
    current = rule.current
    if current is not None and current.content() == data:
        return current
    version = rule.current_version + 1
    content_hash = hashlib.sha256(canonical_bytes(data)).hexdigest()
    rv = DetectionRuleVersion(
        id=rule_version_id(tenant=tenant.slug, name=name, version=version, content=data),
        rule=rule,
        version=version,
        enabled=data["enabled"],
        match_service=data["match"]["service"],
        match_name=data["match"]["name"],
        match_labels=data["match"]["labels"],
        min_severity=data["match"]["min_severity"],
        threshold=data["threshold"],
        window_seconds=data["window_seconds"],
        severity=data["severity"],
        precision_bp=data["precision_bp"],
        content_hash=content_hash,
        created_by=actor_ref(actor),
        created_at=at,
        reason=reason,
    )
    rv.save()
    rule.current_version = version
    rule.save(update_fields=["current_version"])
    ledger_append(
        type="controlplane.detection.rule.versioned",
        subject=f"rule/{tenant.slug}/{name}",
        data={
            "rule": name,
            "rule_version": rv.id,
            "version": version,
            "content": data,
            "content_hash": content_hash,
            "reason": reason,
        },
        tenant=tenant.slug,
        actor=actor_ref(actor),
        time=at,
    )
    return rv


def current_rule_versions(*, tenant: Tenant | int) -> list[DetectionRuleVersion]:
    """The current, enabled version of every rule of a tenant."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    return list(
        DetectionRuleVersion.objects.filter(
            rule__tenant_id=tenant_id, enabled=True, version=F("rule__current_version")
        )
        .select_related("rule")
        .order_by("rule__name")
    )
