"""Every write to identity: tenants, principals, grants, tokens, and the record of sign-ins.

Each change appends its ledger event in the same transaction. Failed authentications are counted per
source; past the limit the source is throttled (AUTH_THROTTLED) and no further events are written, so
nobody can flood the ledger by failing to authenticate.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from controlplane.identity import throttle
from controlplane.identity.capabilities import is_known
from controlplane.identity.models import (
    TOKEN_PREFIX,
    ApiToken,
    Grant,
    Principal,
    PrincipalKind,
    Tenant,
    hash_token,
)
from controlplane.identity.scope import PLATFORM_KINDS, is_platform_capability
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append

SYSTEM = "system"
USERNAME_HMAC_SALT = "controlplane.identity.signin.failed.username"


def _actor_ref(actor: Principal | str | None) -> str:
    if actor is None:
        return SYSTEM
    return actor if isinstance(actor, str) else actor.ref


@transaction.atomic
def tenant_create(*, slug: str, name: str = "", actor: Principal | str | None = None) -> Tenant:
    """Create a tenant, or return the existing one with that slug (safe to run twice)."""
    tenant, created = Tenant.objects.get_or_create(slug=slug, defaults={"name": name or slug})
    if created:
        ledger_append(
            type="controlplane.identity.tenant.created",
            subject=f"tenant/{slug}",
            data={"slug": slug, "name": tenant.name},
            tenant=slug,
            actor=_actor_ref(actor),
        )
    return tenant


@transaction.atomic
def principal_create(
    *,
    tenant: Tenant,
    name: str,
    kind: str,
    user: AbstractBaseUser | None = None,
    actor: Principal | str | None = None,
) -> Principal:
    """Create a principal. A human may be linked to a Django user, which is how the console signs in."""
    if kind not in PrincipalKind.values:
        raise ControlPlaneError("VALIDATION_FAILED", f"kind must be one of {', '.join(PrincipalKind.values)}")
    if kind != PrincipalKind.HUMAN and user is not None:
        raise ControlPlaneError("VALIDATION_FAILED", "only human principals sign in to the console")
    if Principal.objects.filter(tenant=tenant, name=name).exists():
        raise ControlPlaneError("PRINCIPAL_EXISTS", f"principal {tenant.slug}/{name} exists")
    principal = Principal.objects.create(tenant=tenant, name=name, kind=kind, user=user)
    ledger_append(
        type="controlplane.identity.principal.created",
        subject=f"principal/{principal.ref}",
        data={"principal": principal.ref, "kind": kind, "user": user.get_username() if user else ""},
        tenant=tenant.slug,
        actor=_actor_ref(actor),
    )
    return principal


@transaction.atomic
def principal_set_active(
    *, principal: Principal, is_active: bool, actor: Principal | str | None = None
) -> Principal:
    """Deactivate (every token and grant stops working) or reactivate a principal."""
    locked = Principal.objects.select_for_update().select_related("tenant").get(pk=principal.pk)
    if locked.is_active == is_active:
        return locked
    locked.is_active = is_active
    locked.save(update_fields=["is_active"])
    ledger_append(
        type="controlplane.identity.principal.activated"
        if is_active
        else "controlplane.identity.principal.deactivated",
        subject=f"principal/{locked.ref}",
        data={"principal": locked.ref, "is_active": is_active},
        tenant=locked.tenant.slug,
        actor=_actor_ref(actor),
    )
    return locked


@transaction.atomic
def grant_add(
    *,
    principal: Principal,
    capability: str,
    actor: Principal | str | None = None,
    expires_at: datetime | None = None,
) -> Grant:
    """Grant a capability. Granting one the principal already holds returns the existing grant."""
    if not is_known(capability):
        raise ControlPlaneError("CAPABILITY_UNKNOWN", f"unknown capability {capability!r}")
    if is_platform_capability(capability) and principal.kind not in PLATFORM_KINDS:
        raise ControlPlaneError(
            "PLATFORM_GRANT_REFUSED",
            f"{principal.ref} is a {principal.kind}: platform grants go to humans and services",
        )
    existing = Grant.objects.filter(
        principal=principal, capability=capability, revoked_at__isnull=True
    ).first()
    if existing and existing.expires_at == expires_at:
        return existing
    if existing:
        _grant_close(existing, actor=actor)
    grant = Grant.objects.create(
        principal=principal, capability=capability, expires_at=expires_at, granted_by=_actor_ref(actor)
    )
    ledger_append(
        type="controlplane.identity.grant.added",
        subject=f"principal/{principal.ref}",
        data={
            "principal": principal.ref,
            "capability": capability,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        tenant=principal.tenant.slug,
        actor=_actor_ref(actor),
    )
    return grant


def _grant_close(grant: Grant, *, actor: Principal | str | None) -> None:
    grant.revoked_at = timezone.now()
    grant.revoked_by = _actor_ref(actor)
    grant.save(update_fields=["revoked_at", "revoked_by"])


@transaction.atomic
def grant_revoke(*, principal: Principal, capability: str, actor: Principal | str | None = None) -> Grant:
    """Revoke a capability. Refused with GRANT_NOT_FOUND (and nothing written) if none is active."""
    grant = (
        Grant.objects.select_for_update()
        .filter(principal=principal, capability=capability, revoked_at__isnull=True)
        .first()
    )
    if grant is None:
        raise ControlPlaneError("GRANT_NOT_FOUND", f"{principal.ref} holds no active {capability!r} grant")
    _grant_close(grant, actor=actor)
    ledger_append(
        type="controlplane.identity.grant.revoked",
        subject=f"principal/{principal.ref}",
        data={"principal": principal.ref, "capability": capability},
        tenant=principal.tenant.slug,
        actor=_actor_ref(actor),
    )
    return grant


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued, with the secret that is shown once."""

    token: ApiToken
    secret: str  # shown once, never stored


@transaction.atomic
def token_issue(
    *,
    principal: Principal,
    name: str,
    actor: Principal | str | None = None,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """Mint a bearer token `cp_<prefix>_<secret>`; only its hash is kept."""
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        principal=principal, name=name, prefix=prefix, token_hash=hash_token(secret), expires_at=expires_at
    )
    ledger_append(
        type="controlplane.identity.token.issued",
        subject=f"principal/{principal.ref}",
        data={"principal": principal.ref, "prefix": prefix, "name": name},
        tenant=principal.tenant.slug,
        actor=_actor_ref(actor),
    )
    return IssuedToken(token=token, secret=secret)


@transaction.atomic
def token_revoke(*, prefix: str, actor: Principal | str | None = None) -> ApiToken:
    """Revoke the token with this prefix (TOKEN_NOT_FOUND if none); revoking it again writes nothing."""
    token = (
        ApiToken.objects.select_for_update().select_related("principal__tenant").filter(prefix=prefix).first()
    )
    if token is None:
        raise ControlPlaneError("TOKEN_NOT_FOUND", f"no token with prefix {prefix!r}")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        ledger_append(
            type="controlplane.identity.token.revoked",
            subject=f"principal/{token.principal.ref}",
            data={"principal": token.principal.ref, "prefix": prefix},
            tenant=token.principal.tenant.slug,
            actor=_actor_ref(actor),
        )
    return token


_BEARER_LOOKUP_SQL = """
    SELECT t.id, t.expires_at, t.revoked_at, t.last_used_at,
           p.id, p.name, p.kind, p.user_id, p.is_active, p.created_at,
           n.id, n.slug, n.name, n.created_at,
           (SELECT {aggregate} FROM identity_grant g
             WHERE g.principal_id = p.id AND g.revoked_at IS NULL
               AND (g.expires_at IS NULL OR g.expires_at > %s))
      FROM identity_apitoken t
      JOIN identity_principal p ON p.id = t.principal_id
      JOIN identity_tenant n ON n.id = p.tenant_id
     WHERE t.token_hash = %s AND p.is_active
"""


_BEARER_DATETIME_COLUMNS = (1, 2, 3, 9, 13)


def _row_datetimes_aware(row: tuple) -> list:
    """PostgreSQL hands back aware datetimes; SQLite (the quickstart) naive UTC ones or strings."""
    values = list(row)
    if connection.vendor != "postgresql":
        for index in _BEARER_DATETIME_COLUMNS:
            value = values[index]
            if isinstance(value, str):
                value = datetime.fromisoformat(value)
            if value is not None and timezone.is_naive(value):
                value = timezone.make_aware(value, UTC)
            values[index] = value
    return values


def token_authenticate(*, secret: str) -> ApiToken | None:
    """The usable token for a presented secret, or None.

    Every request with a bearer token runs this, so it is one statement: token, principal, tenant and the
    principal's current capabilities (cached on the returned principal for this request only).
    `last_used_at` is touched at most once a minute.
    """
    now = timezone.now()
    aggregate = (
        "string_agg(g.capability, ',')"
        if connection.vendor == "postgresql"
        else "group_concat(g.capability, ',')"
    )
    with connection.cursor() as cursor:
        cursor.execute(_BEARER_LOOKUP_SQL.format(aggregate=aggregate), [now, hash_token(secret)])
        row = cursor.fetchone()
    if row is None:
        return None
    row = _row_datetimes_aware(row)
    tenant = Tenant(id=row[10], slug=row[11], name=row[12], created_at=row[13])
    principal = Principal(
        id=row[4],
        tenant=tenant,
        name=row[5],
        kind=row[6],
        user_id=row[7],
        is_active=row[8],
        created_at=row[9],
    )
    principal.cache_capabilities(set(row[14].split(",")) if row[14] else set())
    token = ApiToken(
        id=row[0], principal=principal, expires_at=row[1], revoked_at=row[2], last_used_at=row[3]
    )
    token._state.adding = False
    if not token.is_usable(now):
        return None
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# --- Sign-in records and throttling ----------------------------------------------------------------


def auth_throttle_check(*, source: str) -> None:
    """Refuse a source that has failed too often within the window (AUTH_THROTTLED).

    Counted in the cache, or per process while the cache is unreachable (controlplane.identity.throttle).
    """
    if throttle.failures_count(source=source) >= settings.CONTROLPLANE_AUTH_FAILURE_LIMIT:
        raise ControlPlaneError("AUTH_THROTTLED", "too many failed sign-ins from this source; wait and retry")


def username_hmac(username: str) -> str:
    """A keyed hash (HMAC-SHA-256, key derived from SECRET_KEY) of a username typed at a failed sign-in.

    The ledger is immutable and readable by auditors: a password typed into the username field must never
    land there. The same name always gives the same hash on one installation, so repeated attempts on one
    account can still be correlated, and an operator who knows a name can check it.
    """
    return salted_hmac(USERNAME_HMAC_SALT, username[:150], algorithm="sha256").hexdigest()


def auth_failure_record(*, source: str, method: str, username: str = "") -> None:
    """Count a failed authentication and ledger it, unless the source is already over its limit.

    The username is recorded only as `username_hmac`, never as typed."""
    failures = throttle.failures_increment(source=source)
    if failures > settings.CONTROLPLANE_AUTH_FAILURE_LIMIT:
        return
    with transaction.atomic():
        ledger_append(
            type="controlplane.identity.signin.failed",
            subject=f"source/{source}",
            data={
                "source": source,
                "method": method,
                "username_hmac": username_hmac(username) if username else "",
                "failures": failures,
            },
            actor="anonymous",
            reason_codes=["AUTH_INVALID_CREDENTIALS" if method == "password" else "AUTH_INVALID_TOKEN"],
        )


def auth_failures_reset(*, source: str) -> None:
    """Forget a source's failed sign-ins (after it signs in)."""
    throttle.failures_clear(source=source)


@transaction.atomic
def signin_record(*, user: AbstractBaseUser, source: str, signed_out: bool = False) -> None:
    """Ledger a sign-in (or, with `signed_out`, a sign-out) of a console user."""
    principal = Principal.objects.select_related("tenant").filter(user=user).first()
    ledger_append(
        type="controlplane.identity.signout.completed"
        if signed_out
        else "controlplane.identity.signin.succeeded",
        subject=f"user/{user.get_username()}",
        data={
            "username": user.get_username(),
            "source": source,
            "principal": principal.ref if principal else "",
        },
        tenant=principal.tenant.slug if principal else "",
        actor=principal.ref if principal else f"user/{user.get_username()}",
    )


def client_source(meta: dict) -> str:
    """The address failures are counted against: the peer, or behind `CONTROLPLANE_TRUSTED_PROXIES` the
    first untrusted hop of X-Forwarded-For (controlplane.identity.throttle.client_address)."""
    return throttle.client_address(meta)


@transaction.atomic
def principal_ensure(
    *,
    tenant: Tenant,
    name: str,
    kind: str,
    capabilities: list[str],
    user: AbstractBaseUser | None = None,
    actor: str = SYSTEM,
) -> Principal:
    """Create the principal if missing and grant whatever it lacks (demo data, quickstart admin)."""
    principal = Principal.objects.filter(tenant=tenant, name=name).first()
    if principal is None:
        principal = principal_create(tenant=tenant, name=name, kind=kind, user=user, actor=actor)
    held = principal.capabilities()
    for capability in capabilities:
        if capability not in held:
            grant_add(principal=principal, capability=capability, actor=actor)
    return principal


# --- Changes made in the Django admin -------------------------------------------------------------


@transaction.atomic
def tenant_update(*, tenant: Tenant, name: str, actor: Principal | str | None = None) -> Tenant:
    """Rename a tenant (its slug never changes); renaming to the same name writes nothing."""
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if locked.name == name:
        return locked
    previous, locked.name = locked.name, name
    locked.save(update_fields=["name"])
    ledger_append(
        type="controlplane.identity.tenant.changed",
        subject=f"tenant/{locked.slug}",
        data={"slug": locked.slug, "name": name, "previous_name": previous},
        tenant=locked.slug,
        actor=_actor_ref(actor),
    )
    return locked


# The fields of a Django user whose change is recorded; secrets are recorded as "changed", never their value.
USER_RECORDED_FIELDS = (
    "username",
    "first_name",
    "last_name",
    "email",
    "is_active",
    "is_staff",
    "is_superuser",
)
USER_SECRET_FIELDS = ("password", "otp_device")


@transaction.atomic
def user_change_record(
    *, user: AbstractBaseUser, changed: list[str], created: bool = False, actor: Principal | str | None = None
) -> None:
    """Ledger a change to a Django user made outside the services (the admin, a device enrolment).

    Call it in the transaction of the change. `changed` names the fields; the event carries the new
    values of the recorded ones (flags, names, e-mail), the names only of secrets (password, OTP device)
    and of group or permission changes, never a hash or a secret.
    """
    values = {name: getattr(user, name) for name in USER_RECORDED_FIELDS if name in changed}
    ledger_append(
        type="controlplane.identity.user.changed",
        subject=f"user/{user.get_username()}",
        data={
            "username": user.get_username(),
            "created": created,
            "changed": sorted(set(changed)),
            "values": values,
            "secrets_changed": sorted(name for name in USER_SECRET_FIELDS if name in changed),
        },
        actor=_actor_ref(actor),
    )


@transaction.atomic
def user_otp_enrol(
    *, user: AbstractBaseUser, name: str = "default", actor: Principal | str | None = None
) -> Any:
    """Give a Django user a new TOTP device (confirmed: the admin accepts its codes at once) and ledger it.

    Returns the device; its `config_url` (otpauth://) is what an authenticator app scans. The secret is
    never ledgered.
    """
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
    user_change_record(user=user, changed=["otp_device"], actor=actor)
    return device
