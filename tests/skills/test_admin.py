"""Django admin shows skills and the trust store read-only: changes go through the services."""

from __future__ import annotations

import pytest

from skills.models import Publisher
from tests.admin_helpers import admin_client_for
from tests.skills.support import SigningPublisher

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    return admin_client_for(client)


def test_skills_and_publishers_are_listed_and_read_only(admin_client):
    SigningPublisher().trust()
    assert b"core" in admin_client.get("/admin/skills/skill/").content
    assert b"acme" in admin_client.get("/admin/skills/publisher/").content
    acme = Publisher.objects.get(name="acme")
    page = admin_client.get(f"/admin/skills/publisher/{acme.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.get("/admin/skills/publisher/add/").status_code == 403
    assert admin_client.post(f"/admin/skills/publisher/{acme.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Publisher.objects.filter(name="acme").exists()
