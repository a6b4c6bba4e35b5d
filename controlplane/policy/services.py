"""Every write to policy: creating profile versions, activating them, bootstrapping an environment.

Each change appends its ledger event in the same transaction; a refusal raises ControlPlaneError with a
reason code and writes nothing. Activation is an approval subject (`policy.activate`): the approvals
app's resolver calls `profile_activate` on a granted decision, passing the content hash it approved.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.identity.scope import platform_authorize
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from controlplane.policy import shipped
from controlplane.policy.content import content_hash, profile_content_validate
from controlplane.policy.models import Environment, PolicyProfile, ProfileStatus

PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,99}$")
PLATFORM_POLICY = "platform.policy.manage"  # profiles are installation-wide: a platform act


def _actor_ref(actor: Principal | str | None) -> str:
    if actor is None:
        return "system"
    return actor if isinstance(actor, str) else actor.ref


def _subject(profile: PolicyProfile) -> str:
    return f"policy-profile/{profile.name}"


@dataclass(frozen=True)
class ProfileCreation:
    """What `profile_create` returns: the version, and whether this call created it."""

    profile: PolicyProfile
    created: bool


def _invalid(path: str, detail: str) -> ControlPlaneError:
    return ControlPlaneError("POLICY_PROFILE_INVALID", f"{path}: {detail}", extra={"path": path})


def profile_create(
    *, name: str, environment: str, content: Any, actor: Principal | str | None, reason: str = ""
) -> ProfileCreation:
    """Save content as the next version of the named profile (version 1 for a new name), as a draft.

    The content is validated first (POLICY_PROFILE_INVALID with the path at fault). Content identical to
    the latest version returns that version and writes nothing. A name belongs to one environment.
    Ledger: `controlplane.policy.profile.created` with the name, version, environment, hash, content and
    the reason given (the CLI requires one, as for every mutation; the API and the admin pass theirs).
    A principal needs `platform.policy.manage` (PLATFORM_SCOPE_REQUIRED); a string actor is the installation.
    """
    platform_authorize(
        actor=actor, capability=PLATFORM_POLICY, detail="policy profiles are installation-wide"
    )
    if not isinstance(name, str) or not PROFILE_NAME.match(name):
        raise _invalid("name", "lower-case letters, digits, dots and dashes, at most 100")
    if environment not in Environment.values:
        raise _invalid("environment", f"must be one of {', '.join(Environment.values)}")
    profile_content_validate(content)
    digest = content_hash(content)
    try:
        with transaction.atomic():
            latest = PolicyProfile.objects.select_for_update().filter(name=name).order_by("-version").first()
            if latest is not None and latest.environment != environment:
                raise _invalid("environment", f"profile {name} belongs to {latest.environment}")
            if latest is not None and latest.content_hash == digest:
                return ProfileCreation(latest, created=False)
            profile = PolicyProfile.objects.create(
                name=name,
                version=latest.version + 1 if latest else 1,
                environment=environment,
                content=content,
                content_hash=digest,
                status=ProfileStatus.DRAFT,
                created_by=_actor_ref(actor),
            )
            ledger_append(
                type="controlplane.policy.profile.created",
                subject=_subject(profile),
                data={
                    "name": profile.name,
                    "version": profile.version,
                    "environment": profile.environment,
                    "content_hash": digest,
                    "content": content,
                    **({"reason": reason.strip()} if reason.strip() else {}),
                },
                actor=profile.created_by,
            )
    except IntegrityError as exc:  # a concurrent create took the same version number
        raise ControlPlaneError(
            "POLICY_PROFILE_CONFLICT", f"another version of {name} was just created"
        ) from exc
    return ProfileCreation(profile, created=True)


# Checks a higher app adds before any activation (registered from its `ready()`): each takes the profile
# and the one active before it, and refuses with its own reason code.
ACTIVATION_GUARDS: list[Callable[..., None]] = []


def register_activation_guard(guard: Callable[..., None]) -> None:
    """Add a check run by `profile_activate` before it changes anything (`guard(profile=, previous=)`)."""
    if guard not in ACTIVATION_GUARDS:
        ACTIVATION_GUARDS.append(guard)


@transaction.atomic
def profile_activate(
    *,
    profile: PolicyProfile,
    actor: Principal | str | None,
    reason: str,
    expected_hash: str | None = None,
) -> PolicyProfile:
    """Make the profile the active one of its environment, retiring the one active before.

    This is the function the approvals resolver for `policy.activate` calls once the change is approved;
    `expected_hash` binds the activation to the content that was approved (POLICY_PROFILE_HASH_MISMATCH).
    Activating the profile already active returns it and writes nothing. A retired version may be
    activated again (a rollback). Needs a reason (VALIDATION_FAILED).
    Ledger: `controlplane.policy.profile.retired` for the previous one, then
    `controlplane.policy.profile.activated` with the name, version, environment, hash and reason.
    A principal needs `platform.policy.manage` (PLATFORM_SCOPE_REQUIRED); the approvals resolver acts as
    `approval/<id>` (the installation, on a granted approval).
    """
    platform_authorize(
        actor=actor, capability=PLATFORM_POLICY, detail="policy profiles are installation-wide"
    )
    if not (reason or "").strip():
        raise ControlPlaneError("VALIDATION_FAILED", "activating a policy profile needs a reason")
    # Lock every profile of the environment (in id order, so concurrent activations queue up and each
    # sees the statuses the previous one committed).
    rows = list(
        PolicyProfile.objects.select_for_update().filter(environment=profile.environment).order_by("pk")
    )
    target = next((row for row in rows if row.pk == profile.pk), None)
    if target is None:
        raise ControlPlaneError("POLICY_PROFILE_NOT_FOUND", f"no profile {profile.ref}")
    if expected_hash is not None and expected_hash != target.content_hash:
        raise ControlPlaneError(
            "POLICY_PROFILE_HASH_MISMATCH",
            f"{target.ref} has content {target.content_hash}, not the approved {expected_hash}",
        )
    if target.status == ProfileStatus.ACTIVE:
        return target
    target.as_content()  # refuses a row whose stored content no longer matches its hash
    now = timezone.now()
    actor_ref = _actor_ref(actor)
    previous = next((row for row in rows if row.status == ProfileStatus.ACTIVE), None)
    for guard in ACTIVATION_GUARDS:  # e.g. governance: prod's strict profile needs a recent preflight
        guard(profile=target, previous=previous)
    if previous is not None:
        previous.status, previous.retired_at = ProfileStatus.RETIRED, now
        previous.save(update_fields=["status", "retired_at"])
        ledger_append(
            type="controlplane.policy.profile.retired",
            subject=_subject(previous),
            data={
                "name": previous.name,
                "version": previous.version,
                "environment": previous.environment,
                "content_hash": previous.content_hash,
                "replaced_by": {"name": target.name, "version": target.version},
                "reason": reason,
            },
            actor=actor_ref,
            time=now,
        )
    target.status, target.activated_at, target.retired_at = ProfileStatus.ACTIVE, now, None
    target.save(update_fields=["status", "activated_at", "retired_at"])
    ledger_append(
        type="controlplane.policy.profile.activated",
        subject=_subject(target),
        data={
            "name": target.name,
            "version": target.version,
            "environment": target.environment,
            "content_hash": target.content_hash,
            "previous": {"name": previous.name, "version": previous.version} if previous else None,
            "reason": reason,
        },
        actor=actor_ref,
        time=now,
    )
    return target


@transaction.atomic
def profile_bootstrap(*, environment: str, actor: Principal | str | None = "system") -> PolicyProfile:
    """Give a fresh environment its shipped profile, ledgered; a no-op when one is already active.

    dev gets `control-plane-dev-v1`, prod `control-plane-strict-v1` (the newest version of that name;
    created through `profile_create` if the row is missing). stage ships no default: it stays fail-closed
    (POLICY_MISSING) until someone creates and activates a stage profile.
    """
    if environment not in Environment.values:
        raise _invalid("environment", f"must be one of {', '.join(Environment.values)}")
    active = PolicyProfile.objects.filter(environment=environment, status=ProfileStatus.ACTIVE).first()
    if active is not None:
        return active
    name = shipped.DEFAULT_FOR_ENVIRONMENT.get(environment)
    if name is None:
        raise ControlPlaneError(
            "POLICY_MISSING", f"no shipped profile for {environment}: create and activate one explicitly"
        )
    profile = PolicyProfile.objects.filter(name=name).order_by("-version").first()
    if profile is None:
        _, content = shipped.SHIPPED[name]
        profile = profile_create(name=name, environment=environment, content=content, actor=actor).profile
    return profile_activate(
        profile=profile, actor=actor, reason=f"bootstrap: shipped default for {environment}"
    )
