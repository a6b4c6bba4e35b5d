"""Producers in Django admin: created and rotated through the services, secrets shown exactly once."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.channels import services
from controlplane.channels.models import Producer, ProducerKey
from controlplane.kernel import signatures
from controlplane.ledger.models import LedgerEvent
from tests.admin_helpers import admin_client_for
from tests.channels.support import written
from tests.identity.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    return admin_client_for(client)


def test_adding_a_producer_shows_its_token_and_secret_once(admin_client):
    tenant = TenantFactory(slug="acme")

    response = admin_client.post(
        "/admin/channels/producer/add/", {"tenant": tenant.pk, "name": "alerts", "ed25519_public_key": ""}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    producer = Producer.objects.get()
    key = ProducerKey.objects.get()
    page = response.content.decode()
    assert key.secret in page and key.key_id in page
    event = LedgerEvent.objects.get(type="controlplane.channels.producer.created")
    assert (event.actor, event.data["producer"]) == ("admins/root", "acme/alerts")
    for url in (
        f"/admin/channels/producer/{producer.pk}/change/",
        f"/admin/channels/producerkey/{key.pk}/change/",
        "/admin/channels/producerkey/",
    ):
        shown = admin_client.get(url)
        assert shown.status_code == 200
        assert key.secret not in shown.content.decode()


def test_adding_an_ed25519_producer_and_refusing_a_bad_key(admin_client):
    tenant = TenantFactory(slug="acme")
    before = written()
    bad = admin_client.post(
        "/admin/channels/producer/add/", {"tenant": tenant.pk, "name": "edge", "ed25519_public_key": "xx"}
    )
    assert bad.status_code == 200 and "base64" in bad.content.decode()
    assert written() == before and not Producer.objects.exists()

    public_key = signatures.ed25519_public_key_text(Ed25519PrivateKey.generate())
    admin_client.post(
        "/admin/channels/producer/add/",
        {"tenant": tenant.pk, "name": "edge", "ed25519_public_key": public_key},
    )
    assert ProducerKey.objects.get().public_key == public_key


def test_a_duplicate_name_is_a_form_error_and_writes_nothing(admin_client):
    services.producer_create(tenant="acme", name="alerts")
    before = written()
    response = admin_client.post(
        "/admin/channels/producer/add/",
        {"tenant": Producer.objects.get().tenant_id, "name": "alerts", "ed25519_public_key": ""},
    )
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert written() == before


def test_the_rotate_action_shows_the_new_secret_and_the_revoke_action_revokes(admin_client):
    created = services.producer_create(tenant="acme", name="alerts")
    rotate = admin_client.post(
        "/admin/channels/producer/",
        {"action": "rotate_hmac_key", "_selected_action": [created.producer.pk]},
    )
    new = ProducerKey.objects.exclude(key_id=created.key_id).get()
    assert rotate.status_code == 200 and new.secret in rotate.content.decode()
    assert ProducerKey.objects.get(key_id=created.key_id).status == "retiring"

    old = ProducerKey.objects.get(key_id=created.key_id)
    admin_client.post("/admin/channels/producerkey/", {"action": "revoke_keys", "_selected_action": [old.pk]})
    assert ProducerKey.objects.get(key_id=created.key_id).status == "revoked"
    assert LedgerEvent.objects.get(type="controlplane.channels.producer.key.revoked").actor == "admins/root"
