"""Channel connections and the chat identities mapped to principals: every write, each ledgered.

Secrets are read as KEY=VALUE lines (the CLI's standard input, the admin form, the API), checked against
the provider's list, and stored encrypted (controlplane.channels.secrets). The ledger records which
secrets are set, never their values.
"""

from __future__ import annotations

import secrets as _random
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from controlplane.channels import secrets
from controlplane.channels.models import ChannelConnection, ChannelIdentity, ChannelProvider
from controlplane.identity.models import Principal, PrincipalKind, Tenant
from controlplane.identity.services import principal_create
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.webhooks import webhook_adapters
from controlplane.ledger.services import ledger_append

# Each provider's secrets: (the ones its signatures need, the optional ones).
PROVIDER_SECRETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ChannelProvider.SLACK: (("signing_secret",), ("bot_token",)),
    ChannelProvider.GITHUB: (("webhook_secret",), ("token",)),
    ChannelProvider.META: (("app_secret", "verify_token"), ("access_token", "phone_number_id")),
    ChannelProvider.TWILIO: (("auth_token",), ("account_sid", "from")),
}


def secrets_parse(text: str) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and `#` comments skipped) as a dict; CHANNEL_SECRETS_INVALID when a
    line has no `=` or a key repeats. The values are never echoed in the error."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ControlPlaneError("CHANNEL_SECRETS_INVALID", f"line {number} is not KEY=VALUE")
        if key in values:
            raise ControlPlaneError("CHANNEL_SECRETS_INVALID", f"{key} is given twice")
        values[key] = value.strip()
    return values


def secrets_check(provider: str, values: dict[str, str]) -> None:
    """Refuse secrets that are not the provider's (CHANNEL_SECRETS_INVALID) or an unknown provider."""
    if provider not in PROVIDER_SECRETS:
        raise ControlPlaneError("VALIDATION_FAILED", f"provider must be one of {', '.join(PROVIDER_SECRETS)}")
    required, optional = PROVIDER_SECRETS[provider]
    unknown = sorted(set(values) - set(required) - set(optional))
    if unknown:
        raise ControlPlaneError(
            "CHANNEL_SECRETS_INVALID",
            f"{provider} takes {', '.join(required + optional)}; not {', '.join(unknown)}",
        )


def _event(connection: ChannelConnection, verb: str, actor: str, **data: object) -> None:
    ledger_append(
        type=f"controlplane.channels.connection.{verb}",
        subject=f"channel/{connection.ref}",
        data={"connection": connection.ref, "provider": connection.provider, "key": connection.key, **data},
        tenant=connection.tenant.slug,
        actor=actor,
    )


@dataclass(frozen=True)
class WebhookUrl:
    adapter: str
    url: str


def connection_webhook_urls(*, connection: ChannelConnection) -> list[WebhookUrl]:
    """The public URLs (from CONTROLPLANE_PUBLIC_URL) of every adapter serving this connection's provider."""
    base = settings.CONTROLPLANE_PUBLIC_URL.rstrip("/")
    return [
        WebhookUrl(a.name, base + reverse(a.route_name(), kwargs={"connection": connection.key}))
        for a in webhook_adapters()
        if getattr(a, "provider", None) == connection.provider
    ]


@transaction.atomic
def channel_connect(
    *, tenant: Tenant, provider: str, name: str, secret_values: dict[str, str], actor: str, channel: str = ""
) -> ChannelConnection:
    """Create a connection with its secrets (encrypted) and a service principal to receive deliveries as.

    Refused with CHANNEL_EXISTS when the tenant has one of that provider and name, CHANNEL_SECRETS_INVALID
    when a secret is not the provider's. Missing required secrets are allowed: the connection then
    refuses every delivery (CHANNEL_NOT_CONFIGURED) until `channel_secrets_rotate` sets them.
    """
    secrets_check(provider, secret_values)
    if ChannelConnection.objects.filter(tenant=tenant, provider=provider, name=name).exists():
        raise ControlPlaneError("CHANNEL_EXISTS", f"{tenant.slug}/{provider}/{name} exists")
    sealed = secrets.secrets_encrypt(secret_values) if secret_values else ""  # fails closed first
    principal = principal_create(
        tenant=tenant, name=f"channel-{provider}-{name}", kind=PrincipalKind.SERVICE, actor=actor
    )
    connection = ChannelConnection.objects.create(
        tenant=tenant,
        provider=provider,
        name=name,
        key="ch" + _random.token_hex(10),
        principal=principal,
        secrets=sealed,
        secret_names=sorted(secret_values),
        channel=channel,
    )
    _event(connection, "connected", actor, secrets=connection.secret_names, channel=channel)
    return connection


def _lock(connection: ChannelConnection) -> ChannelConnection:
    return ChannelConnection.objects.select_for_update().select_related("tenant").get(pk=connection.pk)


@transaction.atomic
def channel_secrets_rotate(
    *, connection: ChannelConnection, secret_values: dict[str, str], actor: str
) -> ChannelConnection:
    """Replace the secrets named in `secret_values` (the others are kept) and re-encrypt all of them under
    the newest CONTROLPLANE_SECRETS_KEY; with no values, only re-encrypt."""
    connection = _lock(connection)
    secrets_check(connection.provider, secret_values)
    current = secrets.secrets_decrypt(connection.secrets)
    merged = {**current, **secret_values}
    connection.secrets = secrets.secrets_encrypt(merged) if merged else ""
    connection.secret_names = sorted(merged)
    connection.rotated_at = timezone.now()
    connection.save(update_fields=["secrets", "secret_names", "rotated_at"])
    _event(
        connection, "secrets_rotated", actor, secrets=connection.secret_names, changed=sorted(secret_values)
    )
    return connection


@transaction.atomic
def channel_disconnect(*, connection: ChannelConnection, actor: str) -> ChannelConnection:
    """Forget the connection's secrets and refuse its deliveries from now on (its rows stay: provenance)."""
    connection = _lock(connection)
    if connection.disconnected_at is not None:
        return connection
    connection.secrets = ""
    connection.secret_names = []
    connection.disconnected_at = timezone.now()
    connection.save(update_fields=["secrets", "secret_names", "disconnected_at"])
    _event(connection, "disconnected", actor)
    return connection


def channel_connection_get(*, tenant: Tenant, provider: str, name: str) -> ChannelConnection:
    """The tenant's connection of that provider and name; CHANNEL_NOT_FOUND otherwise."""
    connection = (
        ChannelConnection.objects.select_related("tenant", "principal")
        .filter(tenant=tenant, provider=provider, name=name)
        .first()
    )
    if connection is None:
        raise ControlPlaneError("CHANNEL_NOT_FOUND", f"no {provider} connection {name!r} in {tenant.slug}")
    return connection


def connection_secrets(*, connection: ChannelConnection) -> dict[str, str]:
    """The decrypted secrets (for verifying and calling the provider only; never to show)."""
    return secrets.secrets_decrypt(connection.secrets)


@transaction.atomic
def channel_identity_map(
    *, tenant: Tenant, provider: str, external_id: str, principal: Principal, actor: str
) -> ChannelIdentity:
    """Map a provider user id to a human principal of the tenant (replacing an earlier mapping).

    Refused: a principal of another tenant (PRINCIPAL_NOT_FOUND), one that is not a person
    (APPROVAL_APPROVER_NOT_HUMAN: chat actions are people's), an empty id (VALIDATION_FAILED).
    """
    if provider not in PROVIDER_SECRETS:
        raise ControlPlaneError("VALIDATION_FAILED", f"provider must be one of {', '.join(PROVIDER_SECRETS)}")
    external_id = external_id.strip()
    if not external_id:
        raise ControlPlaneError("VALIDATION_FAILED", "the provider user id is empty")
    if principal.tenant_id != tenant.pk:
        raise ControlPlaneError("PRINCIPAL_NOT_FOUND", f"{principal.ref} is not of {tenant.slug}")
    if principal.kind != PrincipalKind.HUMAN:
        raise ControlPlaneError(
            "APPROVAL_APPROVER_NOT_HUMAN", f"{principal.ref} is a {principal.kind}; only people act from chat"
        )
    identity, _ = ChannelIdentity.objects.update_or_create(
        tenant=tenant, provider=provider, external_id=external_id, defaults={"principal": principal}
    )
    ledger_append(
        type="controlplane.channels.identity.mapped",
        subject=f"channel-identity/{tenant.slug}/{provider}/{external_id}",
        data={"provider": provider, "external_id": external_id, "principal": principal.ref},
        tenant=tenant.slug,
        actor=actor,
    )
    return identity


@transaction.atomic
def channel_identity_unmap(*, tenant: Tenant, provider: str, external_id: str, actor: str) -> None:
    """Remove a mapping; NOT_FOUND when there is none."""
    deleted, _ = ChannelIdentity.objects.filter(
        tenant=tenant, provider=provider, external_id=external_id
    ).delete()
    if not deleted:
        raise ControlPlaneError("NOT_FOUND", f"{provider}:{external_id} is not mapped in {tenant.slug}")
    ledger_append(
        type="controlplane.channels.identity.unmapped",
        subject=f"channel-identity/{tenant.slug}/{provider}/{external_id}",
        data={"provider": provider, "external_id": external_id},
        tenant=tenant.slug,
        actor=actor,
    )
