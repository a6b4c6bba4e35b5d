"""`/api/v1/channels/connections/` and `/identities/`: `channels.manage` required, the caller's tenant
only, secrets in and never out."""

from __future__ import annotations

import pytest

from controlplane.channels.models import ChannelConnection, ChannelIdentity
from controlplane.channels.services.connections import connection_secrets
from controlplane.ledger.models import LedgerEvent
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/channels/connections/"


@pytest.fixture
def admin_token():
    tenant = TenantFactory(slug="acme")
    return token_for(
        PrincipalFactory(tenant=tenant, name="ops-admin", human=True, capabilities=["channels.manage"])
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_connect_through_the_api_returns_urls_and_never_secrets(client, admin_token):
    body = {"provider": "slack", "name": "ops", "secrets": {"signing_secret": "topsecret-1"}}
    response = client.post(URL, body, content_type="application/json", headers=auth(admin_token))
    assert response.status_code == 201
    data = response.json()
    assert data["secret_names"] == ["signing_secret"] and "topsecret-1" not in response.content.decode()
    assert set(data["webhook_urls"]) == {"slack-events", "slack-interactivity", "slack-commands"}
    listing = client.get(URL, headers=auth(admin_token))
    assert "topsecret-1" not in listing.content.decode() and listing.json()["count"] == 1
    key = data["key"]
    rotated = client.post(
        f"{URL}{key}/rotate-secret/",
        {"secrets": {"signing_secret": "topsecret-2"}},
        content_type="application/json",
        headers=auth(admin_token),
    )
    assert rotated.status_code == 200 and "topsecret-2" not in rotated.content.decode()
    assert connection_secrets(connection=ChannelConnection.objects.get()) == {"signing_secret": "topsecret-2"}
    assert not LedgerEvent.objects.filter(canonical__contains="topsecret").exists()
    gone = client.post(f"{URL}{key}/disconnect/", headers=auth(admin_token))
    assert gone.json()["disconnected_at"] is not None


def test_without_the_capability_and_across_tenants_nothing_is_seen_or_written(client, admin_token):
    other = TenantFactory(slug="globex")
    stranger = token_for(
        PrincipalFactory(tenant=other, name="x", human=True, capabilities=["channels.manage"])
    )
    reader = token_for(PrincipalFactory(tenant=other, name="y", human=True))
    client.post(
        URL,
        {"provider": "github", "name": "repo", "secrets": {}},
        content_type="application/json",
        headers=auth(admin_token),
    )
    assert client.get(URL, headers=auth(stranger)).json()["count"] == 0
    before = LedgerEvent.objects.count()
    refused = client.post(
        URL, {"provider": "slack", "name": "x"}, content_type="application/json", headers=auth(reader)
    )
    assert refused.status_code == 403 and refused.json()["code"] == "CAPABILITY_MISSING"
    assert LedgerEvent.objects.count() == before


def test_identities_map_and_unmap(client, admin_token):
    tenant = TenantFactory(slug="acme")
    PrincipalFactory(tenant=tenant, name="alice", human=True)
    response = client.post(
        "/api/v1/channels/identities/",
        {"provider": "slack", "external_id": "U100", "principal": "alice"},
        content_type="application/json",
        headers=auth(admin_token),
    )
    assert response.status_code == 201 and response.json()["principal"] == "alice"
    identity = ChannelIdentity.objects.get()
    assert (
        client.delete(f"/api/v1/channels/identities/{identity.pk}/", headers=auth(admin_token)).status_code
        == 204
    )
    assert not ChannelIdentity.objects.exists()
