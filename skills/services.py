"""Every write of the skills registry and its trust store, each with its ledger event in the same transaction.

Skills and publishers are platform-scope (installation-wide): their events carry no tenant. Refused
installs are recorded as `controlplane.skill.rejected` (with the codes) and change nothing else.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from skills import envelopes
from skills.core import executor_name
from skills.models import ActionContract, Publisher, PublisherKey, Skill, SkillStatus, TrustRevision
from skills.selectors import install_review
from skills.verification import envelope_check, installed_check, manifest_hash

SOURCE = "/controlplane/skills"


def _actor(actor: Principal | str) -> str:
    return actor.ref if isinstance(actor, Principal) else str(actor)


def _reason_required(reason: str) -> None:
    if not reason or not reason.strip():
        raise ControlPlaneError("SKILL_REASON_REQUIRED", "give a reason")


def trust_revision_bump() -> int:
    """Bump the trust store's revision (inside the caller's transaction) and return the new one."""
    row, _ = TrustRevision.objects.select_for_update().get_or_create(pk=1)
    TrustRevision.objects.filter(pk=1).update(revision=F("revision") + 1)
    return row.revision + 1


def _append(type_: str, subject: str, data: dict[str, Any], actor: str, at: datetime, codes=()) -> None:
    ledger_append(
        type=f"controlplane.{type_}",
        subject=subject,
        data=data,
        actor=actor,
        time=at,
        source=SOURCE,
        reason_codes=list(codes),
    )


def _key_create(*, publisher: Publisher, pem: str, valid_from: datetime, valid_until: datetime | None):
    key_id, scheme, normalised = envelopes.public_key_load(pem)
    if PublisherKey.objects.filter(key_id=key_id).exists():
        raise ControlPlaneError("PUBLISHER_EXISTS", f"key {key_id} is already in the trust store")
    if valid_until is not None and valid_until <= valid_from:
        raise ControlPlaneError("PUBLISHER_INVALID", "valid_until must be after valid_from")
    return PublisherKey.objects.create(
        publisher=publisher,
        key_id=key_id,
        public_key_pem=normalised,
        scheme=scheme,
        valid_from=valid_from,
        valid_until=valid_until,
    )


def _key_data(key: PublisherKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "scheme": key.scheme,
        "public_key": key.public_key_pem,
        "valid_from": key.valid_from.isoformat().replace("+00:00", "Z"),
        "valid_until": key.valid_until.isoformat().replace("+00:00", "Z") if key.valid_until else None,
    }


@transaction.atomic
def publisher_add(
    *,
    name: str,
    public_keys: list[str],
    threshold: int,
    actor: Principal | str,
    reason: str,
    description: str = "",
    valid_until: datetime | None = None,
    at: datetime | None = None,
) -> Publisher:
    """Trust a new publisher with its keys and a k-of-n signature threshold."""
    _reason_required(reason)
    at = at or timezone.now()
    if Publisher.objects.filter(name=name).exists():
        raise ControlPlaneError("PUBLISHER_EXISTS", f"publisher {name!r} is already in the trust store")
    if not public_keys or not 1 <= threshold <= len(public_keys):
        raise ControlPlaneError("PUBLISHER_INVALID", "threshold must be between 1 and the number of keys")
    publisher = Publisher.objects.create(
        name=name, threshold=threshold, description=description, created_at=at
    )
    keys = [
        _key_create(publisher=publisher, pem=pem, valid_from=at, valid_until=valid_until)
        for pem in public_keys
    ]
    revision = trust_revision_bump()
    _append(
        "skill.publisher.added",
        f"publisher/{name}",
        {
            "publisher": name,
            "threshold": threshold,
            "keys": [_key_data(k) for k in keys],
            "reason": reason,
            "revision": revision,
        },
        _actor(actor),
        at,
    )
    skills_recheck(revision=revision, actor=_actor(actor), at=at)  # verified at the new revision
    return publisher


@transaction.atomic
def publisher_key_revoke(
    *, key_id: str, actor: Principal | str, reason: str, at: datetime | None = None
) -> list[str]:
    """Revoke a publisher key and re-check every installed skill: one no longer meeting its publisher's
    threshold is quarantined (SKILL_KEY_REVOKED) and its actions stop compiling.

    Returns the skills quarantined."""
    _reason_required(reason)
    at = at or timezone.now()
    key = PublisherKey.objects.select_for_update().select_related("publisher").filter(key_id=key_id).first()
    if key is None:
        raise ControlPlaneError("PUBLISHER_INVALID", f"no key {key_id} in the trust store")
    if key.revoked_at is not None:
        raise ControlPlaneError("SKILL_KEY_REVOKED", f"key {key_id} was revoked already")
    key.revoked_at, key.revoked_reason = at, reason
    key.save(update_fields=["revoked_at", "revoked_reason"])
    revision = trust_revision_bump()
    actor_ref = _actor(actor)
    _append(
        "skill.publisher.key_revoked",
        f"publisher/{key.publisher.name}",
        {"publisher": key.publisher.name, "key_id": key_id, "reason": reason, "revision": revision},
        actor_ref,
        at,
        ["SKILL_KEY_REVOKED"],
    )
    return skills_recheck(revision=revision, actor=actor_ref, at=at)


def skills_recheck(*, revision: int, actor: str, at: datetime) -> list[str]:
    """Re-verify every installed skill against the trust store (inside the caller's transaction); quarantine
    those that fail, mark the others verified at `revision`. Returns the quarantined skills."""
    quarantined = []
    for skill in Skill.objects.select_for_update().filter(status=SkillStatus.INSTALLED):
        result = installed_check(skill=skill, now=at)
        if result.ok:
            skill.verified_revision = revision
            skill.save(update_fields=["verified_revision"])
            continue
        skill.status, skill.status_codes = SkillStatus.QUARANTINED, result.codes
        skill.status_reason = next(c.detail for c in result.checks if not c.ok)
        skill.save(update_fields=["status", "status_codes", "status_reason"])
        quarantined.append(str(skill))
        _append(
            "skill.quarantined",
            f"skill/{skill.name}",
            {
                "skill": skill.name,
                "version": skill.version,
                "detail": skill.status_reason,
                "revision": revision,
            },
            actor,
            at,
            result.codes,
        )
    return quarantined


@transaction.atomic
def publisher_rotate(
    *,
    publisher: Publisher,
    statement: dict[str, Any],
    actor: Principal | str,
    reason: str,
    at: datetime | None = None,
) -> Publisher:
    """Replace a publisher's key set and threshold with a statement signed by a threshold of its current keys
    (as TUF rotates root). The statement is a DSSE envelope of payloadType
    application/vnd.controlplane.publisher-keys.v1+json over {"publisher", "threshold", "keys": [PEM...]}.
    Old keys stop being valid at `at` (skills they signed before stay installed: trust as of the install)."""
    _reason_required(reason)
    at = at or timezone.now()
    publisher = Publisher.objects.select_for_update().get(pk=publisher.pk)
    try:
        parsed = envelopes.envelope_parse(statement)
        body = json.loads(parsed.payload)
        new_keys, threshold = list(body["keys"]), int(body["threshold"])
        for_this_publisher = body["publisher"] == publisher.name
    except (ControlPlaneError, ValueError, KeyError, TypeError) as exc:
        raise ControlPlaneError(
            "PUBLISHER_ROTATION_INVALID", f"not a key statement for {publisher.name}"
        ) from exc
    if not for_this_publisher or parsed.payload_type != envelopes.ROTATION_PAYLOAD_TYPE:
        raise ControlPlaneError("PUBLISHER_ROTATION_INVALID", f"not a key statement for {publisher.name}")
    current = [k for k in publisher.keys.all() if k.state_at(at) == "valid"]
    signed = {
        key.key_id
        for key in current
        for keyid, sig in parsed.signatures
        if envelopes.signature_verifies(
            envelopes.sslib_key(key_id=key.key_id, pem=key.public_key_pem, scheme=key.scheme),
            parsed,
            keyid,
            sig,
        )
    }
    if len(signed) < publisher.threshold:
        raise ControlPlaneError(
            "PUBLISHER_ROTATION_INVALID",
            f"{len(signed)} current key(s) signed the rotation, {publisher.threshold} required",
        )
    if not new_keys or not 1 <= threshold <= len(new_keys):
        raise ControlPlaneError("PUBLISHER_INVALID", "threshold must be between 1 and the number of keys")
    for key in current:
        key.valid_until = at
        key.save(update_fields=["valid_until"])
    keys = [_key_create(publisher=publisher, pem=pem, valid_from=at, valid_until=None) for pem in new_keys]
    publisher.threshold = threshold
    publisher.save(update_fields=["threshold"])
    revision = trust_revision_bump()
    _append(
        "skill.publisher.rotated",
        f"publisher/{publisher.name}",
        {
            "publisher": publisher.name,
            "threshold": threshold,
            "keys": [_key_data(k) for k in keys],
            "signed_by": sorted(signed),
            "statement_sha256": envelopes.envelope_hash(statement),
            "reason": reason,
            "revision": revision,
        },
        _actor(actor),
        at,
    )
    skills_recheck(revision=revision, actor=_actor(actor), at=at)  # verified at the new revision
    return publisher


def _reject(*, envelope: Any, codes: list[str], detail: str, actor: str, at: datetime, manifest: dict | None):
    data = {
        "envelope_sha256": envelopes.envelope_hash(envelope) if isinstance(envelope, dict) else "",
        "skill": (manifest or {}).get("name", ""),
        "version": (manifest or {}).get("version", ""),
        "detail": detail,
    }
    with transaction.atomic():
        _append("skill.rejected", f"skill/{data['skill'] or 'unknown'}", data, actor, at, codes)


def skill_install(
    *, envelope: Any, actor: Principal | str, reason: str, at: datetime | None = None
) -> tuple[Skill, dict[str, Any]]:
    """Verify a DSSE-signed skill as of `at` (now) and install it: its actions become resolvable and the
    version it upgrades is superseded. Returns the skill and the install review (what it newly allows).

    A refusal raises the first failing check's code, records `controlplane.skill.rejected` with every
    failing code, and installs nothing."""
    _reason_required(reason)
    at = at or timezone.now()
    actor_ref = _actor(actor)
    try:
        with transaction.atomic():
            return _install(envelope=envelope, actor=actor_ref, reason=reason, at=at)
    except _Refused as refused:
        _reject(
            envelope=envelope,
            codes=refused.codes,
            detail=refused.error.detail,
            actor=actor_ref,
            at=at,
            manifest=refused.manifest,
        )
        raise refused.error from None


class _Refused(Exception):
    def __init__(self, error: ControlPlaneError, codes: list[str], manifest: dict | None):
        self.error, self.codes, self.manifest = error, codes, manifest


def _install(*, envelope: Any, actor: str, reason: str, at: datetime) -> tuple[Skill, dict[str, Any]]:
    TrustRevision.objects.select_for_update().get_or_create(pk=1)  # one install or trust change at a time
    result = envelope_check(envelope=envelope, at=at)
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
        },
        actor,
        at,
    )
    return skill, review


@transaction.atomic
def skill_disable(*, name: str, actor: Principal | str, reason: str, at: datetime | None = None) -> Skill:
    """Disable the installed version of a skill: its actions stop compiling and dispatching
    (SKILL_NOT_ACTIVE)."""
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
