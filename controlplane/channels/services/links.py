"""Linking a chat identity to a person by a one-time code sent over the channel to that identity.

A person starts a link for themselves (console, API or `channels link` with their token): a random code
of CONTROLPLANE_CHANNEL_LINK_CODE_DIGITS digits is sent to the identity through the outbox and only its
keyed hash (HMAC-SHA256 under SECRET_KEY) is kept. Typing `link <code>` back from that identity before
CONTROLPLANE_CHANNEL_LINK_TTL_SECONDS pass maps it to the person (`controlplane.channels.identity.linked`).
A wrong code is CHANNEL_LINK_CODE_INVALID (after CONTROLPLANE_CHANNEL_LINK_MAX_FAILURES the link is void),
a late one CHANNEL_LINK_CODE_EXPIRED, a second use CHANNEL_LINK_CODE_USED; none of them maps anything.
The code never reaches the ledger: the received message is recorded as `link ********`. As Slack's and
GitHub's own account-linking flows, proof of the chat side is a secret only that side received.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.channels.models import (
    ChannelConnection,
    ChannelIdentity,
    ChannelLink,
    ChannelProvider,
    LinkStatus,
)
from controlplane.channels.services.outbound import OUTBOUND_SECRETS, require_secrets
from controlplane.channels.services.outbox import channel_message_enqueue
from controlplane.identity.models import Principal, PrincipalKind
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append

LINK_CODE_KIND = "identity.code"
LINKING_PROVIDERS = (ChannelProvider.SLACK, ChannelProvider.META, ChannelProvider.TWILIO)
_GRAMMAR = re.compile(r"^\s*/?link\s+(?P<code>\S+)\s*$", re.IGNORECASE)
REDACTED = "link ********"


def link_code_parse(text: str) -> str | None:
    """The code `link <code>` carries, or None when the text is not a link command."""
    match = _GRAMMAR.match(text or "")
    return match["code"] if match else None


def _code_hash(link_salt: str, code: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"channel-link:{link_salt}:{code}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class StartedLink:
    link: ChannelLink
    code: str  # sent over the channel; returned for tests and never shown in the console or the API


@transaction.atomic
def channel_link_start(
    *, connection: ChannelConnection, principal: Principal, external_id: str, at: datetime | None = None
) -> StartedLink:
    """Start linking `external_id` on the connection to `principal` (the person asking, for themselves).

    Refused: a principal of another tenant (NOT_FOUND), not a person (APPROVAL_APPROVER_NOT_HUMAN), GitHub
    (CHANNEL_LINK_UNSUPPORTED: no channel to send a code over), a connection that cannot send
    (CHANNEL_NOT_CONFIGURED), an empty id (VALIDATION_FAILED). An earlier pending link of the same
    identity is void: only the newest code links.
    """
    at = at or timezone.now()
    external_id = (external_id or "").strip()
    if principal.tenant_id != connection.tenant_id:
        raise ControlPlaneError("NOT_FOUND", "no such channel connection in your tenant")
    if principal.kind != PrincipalKind.HUMAN:
        raise ControlPlaneError("APPROVAL_APPROVER_NOT_HUMAN", f"{principal.ref} is not a person")
    if connection.provider not in LINKING_PROVIDERS:
        raise ControlPlaneError("CHANNEL_LINK_UNSUPPORTED", f"{connection.provider} cannot carry a link code")
    if not external_id or len(external_id) > 120:
        raise ControlPlaneError("VALIDATION_FAILED", "name the chat identity (1 to 120 characters)")
    require_secrets(connection, *OUTBOUND_SECRETS[connection.provider])
    ChannelLink.objects.filter(
        connection=connection, external_id=external_id, status=LinkStatus.PENDING
    ).update(status=LinkStatus.VOID)
    digits = settings.CONTROLPLANE_CHANNEL_LINK_CODE_DIGITS
    code = f"{secrets.randbelow(10**digits):0{digits}d}"
    salt = secrets.token_hex(8)
    link = ChannelLink.objects.create(
        tenant_id=connection.tenant_id,
        connection=connection,
        principal=principal,
        external_id=external_id,
        code_hash=f"{salt}${_code_hash(salt, code)}",
        created_at=at,
        expires_at=at + timedelta(seconds=settings.CONTROLPLANE_CHANNEL_LINK_TTL_SECONDS),
    )
    minutes = max(settings.CONTROLPLANE_CHANNEL_LINK_TTL_SECONDS // 60, 1)
    channel_message_enqueue(
        connection=connection,
        key=f"{LINK_CODE_KIND}:{link.pk}",
        kind=LINK_CODE_KIND,
        to=external_id,
        payload={
            "text": f"{principal.tenant.slug}/{principal.name} asked to link this account to the control "
            f"plane. If that is you, reply: link {code}  (valid {minutes} min). Otherwise ignore this.",
            "scrub": True,
        },
    )
    ledger_append(
        type="controlplane.channels.identity.link_started",
        subject=f"channel-identity/{connection.tenant.slug}/{connection.provider}/{external_id}",
        data={
            "connection": connection.ref,
            "provider": connection.provider,
            "external_id": external_id,
            "principal": principal.ref,
            "link": link.pk,
            "expires_at": link.expires_at.isoformat(),
        },
        tenant=connection.tenant.slug,
        actor=principal.ref,
        time=at,
    )
    return StartedLink(link=link, code=code)


def _matches(link: ChannelLink, code: str) -> bool:
    salt, _, digest = link.code_hash.partition("$")
    return hmac.compare_digest(digest, _code_hash(salt, code))


def channel_link_confirm(
    *, connection: ChannelConnection, sender: str, code: str, at: datetime | None = None
) -> ChannelIdentity:
    """Link `sender` by the code it typed back; refusals raise with their code and map nothing.

    Runs inside the delivery's transaction, in a savepoint a refusal rolls back; the receiving path then
    counts a wrong code with `channel_link_failure_count`.
    """
    at = at or timezone.now()
    links = list(
        ChannelLink.objects.select_for_update()
        .select_related("principal__tenant")
        .filter(connection=connection, external_id=sender)
        .order_by("-created_at", "-id")[:5]
    )
    matching = next((link for link in links if _matches(link, code)), None)
    if matching is not None and matching.status == LinkStatus.LINKED:
        raise ControlPlaneError("CHANNEL_LINK_CODE_USED", "this code linked already; a code links once")
    pending = next((link for link in links if link.status == LinkStatus.PENDING), None)
    if pending is None or matching is not pending:
        raise ControlPlaneError("CHANNEL_LINK_CODE_INVALID", "no pending link of yours has that code")
    if at >= pending.expires_at:
        raise ControlPlaneError("CHANNEL_LINK_CODE_EXPIRED", "the code expired; start the link again")
    pending.status, pending.linked_at = LinkStatus.LINKED, at
    pending.save(update_fields=["status", "linked_at"])
    identity, _ = ChannelIdentity.objects.update_or_create(
        tenant_id=connection.tenant_id,
        provider=connection.provider,
        external_id=sender,
        defaults={"principal": pending.principal},
    )
    ledger_append(
        type="controlplane.channels.identity.linked",
        subject=f"channel-identity/{connection.tenant.slug}/{connection.provider}/{sender}",
        data={
            "connection": connection.ref,
            "provider": connection.provider,
            "external_id": sender,
            "principal": pending.principal.ref,
            "link": pending.pk,
        },
        tenant=connection.tenant.slug,
        actor=pending.principal.ref,
        time=at,
    )
    return identity


def channel_link_failure_count(*, connection: ChannelConnection, sender: str) -> None:
    """Count a wrong code against the identity's pending link; too many void it (a guessing bound)."""
    pending = (
        ChannelLink.objects.select_for_update()
        .filter(connection=connection, external_id=sender, status=LinkStatus.PENDING)
        .order_by("-created_at", "-id")
        .first()
    )
    if pending is None:
        return
    pending.failed_attempts += 1
    if pending.failed_attempts >= settings.CONTROLPLANE_CHANNEL_LINK_MAX_FAILURES:
        pending.status = LinkStatus.VOID
    pending.save(update_fields=["failed_attempts", "status"])


@transaction.atomic
def channel_link_revoke(*, identity: ChannelIdentity, actor: Principal) -> None:
    """Revoke a linked identity: the person themselves, or an admin of the tenant (`channels.manage`).

    Another person's link is NOT_FOUND to a non-admin (as if it did not exist); ledgered
    `controlplane.channels.identity.revoked`.
    """
    if identity.tenant_id != actor.tenant_id or (
        identity.principal_id != actor.pk and not actor.has_capability("channels.manage")
    ):
        raise ControlPlaneError("NOT_FOUND", "no such linked identity of yours")
    ref = identity.principal.ref
    identity.delete()
    ledger_append(
        type="controlplane.channels.identity.revoked",
        subject=f"channel-identity/{identity.tenant.slug}/{identity.provider}/{identity.external_id}",
        data={"provider": identity.provider, "external_id": identity.external_id, "principal": ref},
        tenant=identity.tenant.slug,
        actor=actor.ref,
    )
