"""Django admin changes to identity go through the services and are ledgered."""

from __future__ import annotations

import pytest

from controlplane.identity.models import Grant, Principal
from controlplane.ledger.models import LedgerEvent
from tests.admin_helpers import admin_client_for
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    return admin_client_for(client)


def test_adding_a_grant_in_admin_is_ledgered(admin_client):
    principal = PrincipalFactory()
    response = admin_client.post(
        "/admin/identity/grant/add/",
        {"principal": principal.pk, "capability": "ledger.read", "expires_at": ""},
    )
    assert response.status_code == 302
    event = LedgerEvent.objects.filter(type="controlplane.identity.grant.added").last()
    assert event.data["principal"] == principal.ref and event.actor.endswith("/root")
    assert principal.has_capability("ledger.read")


def test_deleting_a_grant_in_admin_revokes_it_through_the_service(admin_client):
    principal = PrincipalFactory(capabilities=["ledger.read"])
    grant = Grant.objects.get(principal=principal)
    response = admin_client.post(f"/admin/identity/grant/{grant.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.revoked_at is not None  # kept as history, not deleted
    assert LedgerEvent.objects.filter(type="controlplane.identity.grant.revoked").count() == 1


def test_creating_and_deactivating_a_principal_in_admin_is_ledgered(admin_client):
    tenant = TenantFactory(slug="acme")
    inline = {"grants-TOTAL_FORMS": "0", "grants-INITIAL_FORMS": "0"}
    admin_client.post(
        "/admin/identity/principal/add/", {"tenant": tenant.pk, "name": "bot", "kind": "agent", **inline}
    )
    principal = Principal.objects.get(name="bot")
    admin_client.post(f"/admin/identity/principal/{principal.pk}/change/", inline)
    principal.refresh_from_db()
    assert principal.is_active is False
    types = list(LedgerEvent.objects.filter(subject="principal/acme/bot").values_list("type", flat=True))
    assert types == ["controlplane.identity.principal.created", "controlplane.identity.principal.deactivated"]


def test_ledger_is_read_only_in_admin(admin_client):
    event = LedgerEvent.objects.first()
    assert admin_client.get(f"/admin/ledger/ledgerevent/{event.seq}/change/").status_code == 200
    assert (
        admin_client.post(f"/admin/ledger/ledgerevent/{event.seq}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert admin_client.get("/admin/ledger/ledgerevent/add/").status_code == 403
