"""The skills API: schema, list, detail, verify (a dry run), install with its review, disable."""

from __future__ import annotations

import pytest

from controlplane.ledger.models import LedgerEvent
from skills.models import Skill
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.skills.support import SigningPublisher

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader():
    return token_for(PrincipalFactory(tenant=TenantFactory(slug="ops"), capabilities=["skills.read"]))


@pytest.fixture
def manager():
    return token_for(
        PrincipalFactory(tenant=TenantFactory(slug="platform"), capabilities=["skills.read", "skills.manage"])
    )


def _post(client, path, body, token):
    return client.post(path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def _get(client, path, token):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_anonymous_is_refused(client):
    assert client.get("/api/v1/skills/").status_code == 401


def test_schema_list_and_detail(client, reader):
    schema = _get(client, "/api/v1/skills/schema/", reader).json()
    assert schema["title"] == "skill-manifest/v1"
    assert "blast_radius" in schema["$defs"]["action"]["required"]
    listing = _get(client, "/api/v1/skills/", reader).json()
    rows = listing["results"] if isinstance(listing, dict) else listing
    assert [row["name"] for row in rows] == ["core"]
    core = _get(client, "/api/v1/skills/core/", reader).json()
    assert core["trusted"] is True and [a["name"] for a in core["actions"]] == ["http.webhook", "noop.echo"]
    assert _get(client, "/api/v1/skills/core/verify/", reader).json()["ok"] is True
    assert _get(client, "/api/v1/skills/nope/", reader).status_code == 404


def test_verify_is_a_dry_run(client, reader):
    publisher = SigningPublisher()
    publisher.trust()
    seq = LedgerEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    body = _post(client, "/api/v1/skills/verify/", {"envelope": publisher.sign()}, reader).json()
    assert body["ok"] is True and body["codes"] == []
    assert [c["check"] for c in body["checks"]][:3] == ["payload type", "manifest schema", "publisher"]
    unknown = _post(client, "/api/v1/skills/verify/", {"envelope": SigningPublisher().sign()}, reader).json()
    assert unknown["codes"] == ["SKILL_SIGNATURE_INVALID"]
    assert LedgerEvent.objects.order_by("-seq").values_list("seq", flat=True).first() == seq


def test_install_needs_skills_manage(client, reader):
    publisher = SigningPublisher()
    publisher.trust()
    response = _post(client, "/api/v1/skills/install/", {"envelope": publisher.sign(), "reason": "r"}, reader)
    assert response.status_code == 403 and response.json()["code"] == "CAPABILITY_MISSING"
    assert not Skill.objects.filter(name="acme-ops").exists()


def test_install_answers_with_the_review_and_disable(client, manager):
    publisher = SigningPublisher()
    publisher.trust()
    response = _post(
        client, "/api/v1/skills/install/", {"envelope": publisher.sign(), "reason": "r"}, manager
    )
    assert response.status_code == 201
    body = response.json()
    assert body["skill"]["name"] == "acme-ops" and body["skill"]["signed_by"] == publisher.key_ids
    assert body["review"]["changes"][0]["change"] == "added"
    refused = _post(client, "/api/v1/skills/install/", {"envelope": publisher.sign(), "reason": "r"}, manager)
    assert refused.status_code == 409 and refused.json()["code"] == "SKILL_ROLLBACK"
    disabled = _post(client, "/api/v1/skills/acme-ops/disable/", {"reason": "incident"}, manager)
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    event = LedgerEvent.objects.filter(type="controlplane.skill.disabled").get()
    assert event.actor.endswith("/" + event.actor.split("/")[-1]) and event.data["reason"] == "incident"


def test_install_of_a_tampered_envelope_is_refused_with_its_code(client, manager):
    publisher = SigningPublisher()
    publisher.trust()
    envelope = publisher.sign()
    envelope["signatures"][0]["sig"] = SigningPublisher().sign()["signatures"][0]["sig"]
    response = _post(client, "/api/v1/skills/install/", {"envelope": envelope, "reason": "r"}, manager)
    assert response.status_code == 400 and response.json()["code"] == "SKILL_SIGNATURE_INVALID"
    assert not Skill.objects.filter(name="acme-ops").exists()
    assert LedgerEvent.objects.filter(type="controlplane.skill.rejected").count() == 1
