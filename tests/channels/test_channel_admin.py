"""Channel connections in Django admin: created and rotated through the services, secrets never shown."""

from __future__ import annotations

import pytest

from controlplane.channels.models import ChannelConnection
from controlplane.channels.services.connections import connection_secrets
from controlplane.ledger.models import LedgerEvent
from tests.admin_helpers import admin_client_for
from tests.identity.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    return admin_client_for(client)


def test_adding_and_rotating_a_connection_never_shows_its_secrets(admin_client):
    tenant = TenantFactory(slug="acme")
    response = admin_client.post(
        "/admin/channels/channelconnection/add/",
        {
            "tenant": tenant.pk,
            "provider": "github",
            "name": "repo",
            "channel": "",
            "new_secrets": "webhook_secret=hush-1",
        },
    )
    assert response.status_code == 302
    connection = ChannelConnection.objects.get()
    assert connection_secrets(connection=connection) == {"webhook_secret": "hush-1"}
    event = LedgerEvent.objects.get(type="controlplane.channels.connection.connected")
    assert event.actor == "admins/root" and event.data["secrets"] == ["webhook_secret"]
    page = admin_client.get(f"/admin/channels/channelconnection/{connection.pk}/change/")
    assert page.status_code == 200 and "hush-1" not in page.content.decode()
    assert f"/api/v1/channels/github/{connection.key}/" in page.content.decode()
    admin_client.post(
        f"/admin/channels/channelconnection/{connection.pk}/change/", {"new_secrets": "webhook_secret=hush-2"}
    )
    connection.refresh_from_db()
    assert connection_secrets(connection=connection) == {"webhook_secret": "hush-2"}
    assert not LedgerEvent.objects.filter(canonical__contains="hush-").exists()


def test_secrets_not_the_providers_are_refused_by_the_form(admin_client):
    tenant = TenantFactory(slug="acme")
    before = LedgerEvent.objects.count()
    response = admin_client.post(
        "/admin/channels/channelconnection/add/",
        {"tenant": tenant.pk, "provider": "slack", "name": "ops", "new_secrets": "password=x"},
    )
    assert response.status_code == 200 and "CHANNEL_SECRETS_INVALID" in response.content.decode()
    assert not ChannelConnection.objects.exists() and LedgerEvent.objects.count() == before
