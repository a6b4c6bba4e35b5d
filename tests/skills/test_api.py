"""The skills API: schema, list, detail, verify (a dry run), install (an approval request with its review),
disable and enable, the publisher trust store."""

from __future__ import annotations

import pytest

from controlplane.ledger.models import LedgerEvent
from skills.models import Skill
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.skills.support import SigningPublisher, approve, platform_people

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader():
    return token_for(PrincipalFactory(tenant=TenantFactory(slug="ops"), capabilities=["skills.read"]))


@pytest.fixture
def people():
    return platform_people()


@pytest.fixture
def manager(people):
    return token_for(people[0])


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


def test_install_needs_the_platform_capability(client, reader):
    publisher = SigningPublisher()
    publisher.trust()
    response = _post(client, "/api/v1/skills/install/", {"envelope": publisher.sign(), "reason": "r"}, reader)
    assert response.status_code == 403 and response.json()["code"] == "CAPABILITY_MISSING"
    assert not Skill.objects.filter(name="acme-ops").exists()


def test_install_asks_approval_then_disable_and_enable(client, manager, people):
    publisher = SigningPublisher()
    publisher.trust()
    response = _post(
        client, "/api/v1/skills/install/", {"envelope": publisher.sign(), "reason": "r"}, manager
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending" and body["review"]["changes"][0]["change"] == "added"
    assert not Skill.objects.filter(name="acme-ops").exists()
    again = _post(client, "/api/v1/skills/install/", {"envelope": publisher.sign(), "reason": "r"}, manager)
    assert again.status_code == 202 and again.json()["approval"] == body["approval"]  # the one open request
    approve(body["approval"], people[1])
    detail = _get(client, f"/api/v1/skills/installs/{body['approval']}/", manager).json()
    assert detail["status"] == "installed" and detail["skill"] == "acme-ops@1.0.0"
    installed = _get(client, "/api/v1/skills/acme-ops/", manager).json()
    assert installed["signed_by"] == publisher.key_ids
    assert installed["actions"][0]["blast_radius"] == {"target_input": "service", "max_targets": 1}
    refused = _post(client, "/api/v1/skills/install/", {"envelope": publisher.sign(), "reason": "r"}, manager)
    assert refused.status_code == 409 and refused.json()["code"] == "SKILL_ROLLBACK"
    disabled = _post(client, "/api/v1/skills/acme-ops/disable/", {"reason": "incident"}, manager)
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    event = LedgerEvent.objects.filter(type="controlplane.skill.disabled").get()
    assert event.actor == people[0].ref and event.data["reason"] == "incident"
    enabled = _post(client, "/api/v1/skills/acme-ops/enable/", {"reason": "over"}, manager)
    assert enabled.status_code == 200 and enabled.json()["status"] == "installed"
    twice = _post(client, "/api/v1/skills/acme-ops/enable/", {"reason": "over"}, manager)
    assert twice.status_code == 409 and twice.json()["code"] == "SKILL_NOT_DISABLED"
    assert LedgerEvent.objects.filter(type="controlplane.skill.enabled").get().actor == people[0].ref


def test_enable_and_disable_need_the_platform_capability(client, reader):
    for verb in ("disable", "enable"):
        response = _post(client, f"/api/v1/skills/core/{verb}/", {"reason": "r"}, reader)
        assert response.status_code == 403 and response.json()["code"] == "CAPABILITY_MISSING"
    assert Skill.objects.get(name="core").status == "installed"
    assert not LedgerEvent.objects.filter(type__startswith="controlplane.skill.").exists()


def test_publishers_and_keys(client, manager, reader):
    publisher = SigningPublisher(2)
    body = {"name": "acme", "public_keys": [p for _, p in publisher.pairs], "threshold": 2, "reason": "r"}
    assert _post(client, "/api/v1/skills/publishers/", body, reader).status_code == 403
    created = _post(client, "/api/v1/skills/publishers/", body, manager)
    assert created.status_code == 201 and created.json()["threshold"] == 2
    listing = _get(client, "/api/v1/skills/publishers/", reader).json()
    rows = listing["results"] if isinstance(listing, dict) else listing
    assert [row["name"] for row in rows] == ["acme", "controlplane"]
    acme = _get(client, "/api/v1/skills/publishers/acme/", reader).json()
    assert sorted(k["key_id"] for k in acme["keys"]) == sorted(publisher.key_ids)
    assert {k["state"] for k in acme["keys"]} == {"valid"}
    key_id = publisher.key_ids[0]
    path = f"/api/v1/skills/publishers/keys/{key_id}/revoke/"
    assert _post(client, path, {"reason": "leaked"}, reader).status_code == 403
    revoked = _post(client, path, {"reason": "leaked"}, manager)
    body = revoked.json()
    body.pop("meta")  # the telemetry envelope (docs/telemetry.md)
    assert revoked.status_code == 200 and body == {"key_id": key_id, "quarantined": []}
    again = _post(client, path, {"reason": "leaked"}, manager)
    assert again.status_code == 400 and again.json()["code"] == "SKILL_KEY_REVOKED"
    unknown = _post(
        client, "/api/v1/skills/publishers/keys/" + "0" * 64 + "/revoke/", {"reason": "r"}, manager
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "PUBLISHER_KEY_NOT_FOUND"


def test_install_of_a_tampered_envelope_is_refused_with_its_code(client, manager):
    publisher = SigningPublisher()
    publisher.trust()
    envelope = publisher.sign()
    envelope["signatures"][0]["sig"] = SigningPublisher().sign()["signatures"][0]["sig"]
    response = _post(client, "/api/v1/skills/install/", {"envelope": envelope, "reason": "r"}, manager)
    assert response.status_code == 400 and response.json()["code"] == "SKILL_SIGNATURE_INVALID"
    assert not Skill.objects.filter(name="acme-ops").exists()
    assert LedgerEvent.objects.filter(type="controlplane.skill.rejected").count() == 1
