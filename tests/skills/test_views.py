"""The skill registry page: whole page and fragment, needs skills.read."""

from __future__ import annotations

import pytest

from skills import services
from tests.identity.factories import PrincipalFactory
from tests.skills.support import SigningPublisher

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer():
    return PrincipalFactory(human=True, capabilities=["console.view", "skills.read"])


def test_registry_page_and_fragment(client, viewer):
    publisher = SigningPublisher()
    publisher.trust()
    services.skill_install(envelope=publisher.sign(), actor="test", reason="r")
    client.force_login(viewer.user)
    page = client.get("/skills/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<html" in html and 'data-skill="core"' in html and 'data-skill="acme-ops"' in html
    assert "acme.restart@1.0.0" in html and 'data-publisher="acme"' in html and "verified" in html
    fragment = client.get("/skills/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and 'id="registry"' in fragment


def test_registry_needs_skills_read(client):
    nobody = PrincipalFactory(human=True, capabilities=["console.view"])
    client.force_login(nobody.user)
    assert client.get("/skills/").status_code == 403
    client.logout()
    assert client.get("/skills/").status_code == 302
