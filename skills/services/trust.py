"""The publisher trust store: adding publishers, rotating and revoking keys, re-checking installed skills."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from skills import envelopes
from skills.models import (
    Publisher,
    PublisherKey,
    Skill,
    SkillStatus,
)
from skills.services.common import _actor, _append, _authorize, _reason_required, trust_revision_bump
from skills.verification import installed_check


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
    _authorize(actor, "the trust store is installation-wide")
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
    _authorize(actor, "the trust store is installation-wide")
    _reason_required(reason)
    at = at or timezone.now()
    key = PublisherKey.objects.select_for_update().select_related("publisher").filter(key_id=key_id).first()
    if key is None:
        raise ControlPlaneError("PUBLISHER_KEY_NOT_FOUND", f"no key {key_id} in the trust store")
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
    _authorize(actor, "the trust store is installation-wide")
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
