"""Plugins in the Django admin: visible to administrators, read-only (changes go through the services)."""

from __future__ import annotations

import pytest

from controlplane.ledger.models import LedgerEvent
from tests.admin_helpers import admin_client_for
from tests.plugins.support import register

pytestmark = pytest.mark.django_db


def test_plugins_are_listed_and_read_only_in_admin(client):
    runner = register("runner-eu")
    admin_client_for(client)
    listing = client.get("/admin/plugins/plugin/")
    assert listing.status_code == 200 and b"runner-eu" in listing.content
    page = client.get(f"/admin/plugins/plugin/{runner.plugin.pk}/change/")
    assert page.status_code == 200 and b"Save" not in page.content
    before = LedgerEvent.objects.count()
    client.post(f"/admin/plugins/plugin/{runner.plugin.pk}/change/", {"state": "healthy"})
    assert runner.refresh().state == "unknown" and LedgerEvent.objects.count() == before
    assert client.get("/admin/plugins/plugin/add/").status_code == 403
