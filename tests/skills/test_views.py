"""The skill registry, the install review and the publisher trust store: whole page and fragment, each
needs skills.read; disable and enable from the console go through the services (platform capability)."""

from __future__ import annotations

import pytest

from controlplane.ledger.models import LedgerEvent
from skills import services
from skills.models import Skill
from tests.identity.factories import PrincipalFactory
from tests.skills.support import ACTION, SigningPublisher, approve, manifest, platform_people

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
    assert "acme.restart@1.0.0" in html and "verified" in html and "signed by 1 key" in html
    fragment = client.get("/skills/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and 'id="registry"' in fragment


def test_registry_needs_skills_read(client):
    nobody = PrincipalFactory(human=True, capabilities=["console.view"])
    client.force_login(nobody.user)
    assert client.get("/skills/").status_code == 403
    client.logout()
    assert client.get("/skills/").status_code == 302


def test_publishers_page_and_fragment(client, viewer):
    publisher = SigningPublisher(2)
    publisher.trust(threshold=2)
    services.publisher_key_revoke(key_id=publisher.key_ids[0], actor="test", reason="leaked laptop")
    client.force_login(viewer.user)
    html = client.get("/skills/publishers/").content.decode()
    assert "<html" in html and f'data-key="{publisher.key_ids[0]}"' in html
    assert "revoked" in html and "leaked laptop" in html and "2 of 2" in html
    assert "trusted as built-in" in html  # controlplane
    fragment = client.get("/skills/publishers/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and 'id="publishers"' in fragment


def test_install_review_page_shows_the_diff_and_the_queue_links_it(client):
    operator, approvers = platform_people()
    publisher = SigningPublisher()
    publisher.trust()
    services.skill_install(envelope=publisher.sign(), actor="test", reason="v1")
    raised = {**ACTION, "version": "2.0.0", "risk_tier": "high", "capabilities": ["acme.services.kill"]}
    request = services.skill_install_request(
        envelope=publisher.sign(manifest(version="2.0.0", actions=[raised])), actor=operator, reason="up"
    )
    reviewer = approvers[0]
    from controlplane.identity import services as identity

    for capability in ("console.view", "skills.read", "approvals.read"):
        identity.grant_add(principal=reviewer, capability=capability, actor="test")
    client.force_login(reviewer.user)
    html = client.get(f"/skills/installs/{request.pk}/").content.decode()
    assert "<html" in html and "1.0.0 → 2.0.0" in html and 'data-action="acme.restart"' in html
    assert "tier raised medium → high" in html and "newly needs acme.services.kill" in html
    assert "decide in the approval queue" in html and 'id="review-checks"' in html
    fragment = client.get(f"/skills/installs/{request.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and 'id="review"' in fragment
    assert client.get("/skills/installs/" + "0" * 64 + "/").status_code == 404
    queue = client.get("/approvals/").content.decode()
    assert f"/skills/installs/{request.pk}/" in queue
    approve(request.pk, approvers)
    assert "installed as" in client.get(f"/skills/installs/{request.pk}/").content.decode()


def test_disable_and_enable_from_the_console(client):
    operator, _ = platform_people()
    from controlplane.identity import services as identity

    identity.grant_add(principal=operator, capability="console.view", actor="test")
    client.force_login(operator.user)
    assert "Disable</button>" in client.get("/skills/").content.decode()
    page = client.post("/skills/core/disable/", {"reason": "drill"}, HTTP_HX_REQUEST="true")
    assert page.status_code == 200 and "core@1.0.0 disabled." in page.content.decode()
    assert Skill.objects.get(name="core").status == "disabled"
    assert client.post("/skills/core/enable/", {"reason": "over"}).status_code == 302
    assert Skill.objects.get(name="core").status == "installed"
    assert [e.type for e in LedgerEvent.objects.filter(type__startswith="controlplane.skill.")] == [
        "controlplane.skill.disabled",
        "controlplane.skill.enabled",
    ]


def test_disable_from_the_console_needs_the_platform_capability(client, viewer):
    client.force_login(viewer.user)
    assert "Disable</button>" not in client.get("/skills/").content.decode()
    refused = client.post("/skills/core/disable/", {"reason": "drill"})
    assert refused.status_code == 403 and b"PLATFORM_SCOPE_REQUIRED" in refused.content
    assert Skill.objects.get(name="core").status == "installed"
    assert not LedgerEvent.objects.filter(type__startswith="controlplane.skill.").exists()
    assert client.post("/skills/core/disable/", {}).status_code == 400  # no reason: VALIDATION_FAILED
