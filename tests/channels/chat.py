"""Helpers of the channel provider conformance tests: a tenant with a connection, people mapped to chat
users, an approval waiting for them (the approvals tests' own helpers), and what a delivery wrote."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from approvals.models import ApprovalDecision
from controlplane.channels.models import ChannelConnection
from controlplane.channels.services.connections import channel_connect, channel_identity_map
from controlplane.identity.services import grant_add
from controlplane.ledger.models import LedgerEvent
from tests.approvals.test_services import approver, open_request  # noqa: F401  (re-exported helpers)
from tests.identity.factories import PrincipalFactory, TenantFactory

CONTENT_HASH = "a" * 64


def connect(provider: str, secrets: dict[str, str], *, tenant_slug: str = "acme") -> ChannelConnection:
    tenant = TenantFactory(slug=tenant_slug)
    return channel_connect(tenant=tenant, provider=provider, name="ops", secret_values=secrets, actor="test")


def url(adapter: str, connection: ChannelConnection | str) -> str:
    key = connection if isinstance(connection, str) else connection.key
    return reverse(f"webhook-{adapter}", kwargs={"connection": key})


def person(connection: ChannelConnection, name: str, external_id: str) -> Any:
    """A human holding approvals.decide and .read, mapped to `external_id` on the connection's provider."""
    principal = approver(connection.tenant, name)
    grant_add(principal=principal, capability="approvals.read", actor="test")
    channel_identity_map(
        tenant=connection.tenant,
        provider=connection.provider,
        external_id=external_id,
        principal=principal,
        actor="test",
    )
    return principal


def agent(connection: ChannelConnection) -> Any:
    return PrincipalFactory(tenant=connection.tenant, name="deploy-agent", agent=True)


def written() -> tuple[int, int]:
    """Ledger events and approval decisions: what a refused delivery must leave untouched."""
    return LedgerEvent.objects.count(), ApprovalDecision.objects.count()


def messages() -> list[dict[str, Any]]:
    return list(
        LedgerEvent.objects.filter(type="controlplane.channels.message.received")
        .order_by("seq")
        .values_list("data", flat=True)
    )
