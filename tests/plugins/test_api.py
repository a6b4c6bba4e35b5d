"""The plugins API: list, health, detail, register, quarantine, release, review decisions; tenant-scoped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from plugins.models import Plugin, ReviewItem
from plugins.services import plugins_supervise
from tests.envelope import without_meta
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.plugins.support import manifest, register

pytestmark = pytest.mark.django_db

ALL = ["plugins.read", "plugins.manage", "plugins.review", "system.read"]


def client_for(principal) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(principal)}")
    return client


@pytest.fixture
def acme_alice():
    return PrincipalFactory(tenant=TenantFactory(slug="acme"), name="alice", human=True, capabilities=ALL)


def healthy_and_degraded():
    good, bad = register("good"), register("bad")
    now = timezone.now() + timedelta(seconds=1)  # after the registrations: evidence before one is not counted
    good.beat(at=now)
    bad.beat(at=now, checks={"disk": "failing"})
    plugins_supervise(now=now + timedelta(seconds=1))
    return good, bad


def test_list_and_health_show_state_reason_and_evidence_never_green_without_it(
    acme_alice, django_assert_max_num_queries
):
    healthy_and_degraded()
    register("fresh")
    client = client_for(acme_alice)
    with django_assert_max_num_queries(12):
        listed = client.get("/api/v1/plugins/").json()
    rows = {row["name"]: row for row in listed["results"]}
    assert (rows["good"]["state"], rows["good"]["healthy"]) == ("healthy", True)
    assert rows["bad"]["reason_codes"] == ["PLUGIN_CHECK_DEGRADED"]
    assert (rows["fresh"]["state"], rows["fresh"]["healthy"]) == ("unknown", False)
    assert rows["fresh"]["last_evidence"]["heartbeat_at"] is None
    health = client.get("/api/v1/plugins/health/").json()
    assert (
        health["healthy"] is False and health["counts"]["healthy"] == 1 and health["counts"]["degraded"] == 1
    )
    detail = client.get("/api/v1/plugins/good/").json()
    assert detail["last_evidence"]["sequence"] == 1 and detail["backoff"] == {
        "seconds": 0,
        "next_restart_at": None,
    }
    ready = client.get("/readyz").json()
    assert ready["plugins"]["ok"] is False and ready["plugins"]["plugins"]["fresh"]["state"] == "unknown"


def test_register_through_the_api_and_a_cycle_is_refused_with_its_code(acme_alice):
    PrincipalFactory(tenant=acme_alice.tenant, name="svc")
    client = client_for(acme_alice)
    key = Ed25519PrivateKey.generate()
    body = {"manifest": manifest("api-one", key=key, principal="svc", depends_on=[{"name": "api-two"}])}
    created = client.post("/api/v1/plugins/", body, format="json")
    assert created.status_code == 201 and created.json()["state"] == "unknown"
    body = {"manifest": manifest("api-two", key=key, principal="svc", depends_on=[{"name": "api-one"}])}
    before = LedgerEvent.objects.count()
    refused = client.post("/api/v1/plugins/", body, format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "PLUGIN_DEPENDENCY_CYCLE")
    assert LedgerEvent.objects.count() == before and not Plugin.objects.filter(name="api-two").exists()
    shared = client.post("/api/v1/plugins/", {**body, "shared": True}, format="json")
    assert (shared.status_code, shared.json()["code"]) == (403, "PLATFORM_SCOPE_REQUIRED")


def test_quarantine_release_and_review_decisions_through_the_api(acme_alice):
    policy.profile_bootstrap(environment="dev")
    _, bad = healthy_and_degraded()
    client = client_for(acme_alice)
    item = ReviewItem.objects.get()
    listed = client.get("/api/v1/plugins/reviews/").json()
    assert [r["code"] for r in listed["results"]] == ["PLUGIN_CHECK_DEGRADED"]
    missing = client.post(
        f"/api/v1/plugins/reviews/{item.pk}/decide/", {"decision": "dismiss"}, format="json"
    )
    assert missing.status_code == 400
    decided = client.post(
        "/api/v1/plugins/reviews/bulk-decide/",
        {"items": [item.pk], "decision": "quarantine", "reason": "disk failing"},
        format="json",
    ).json()
    assert without_meta(decided) == {"outcomes": [{"item": item.pk, "status": "quarantined"}]}
    assert bad.refresh().state == "quarantined"
    again = client.post("/api/v1/plugins/bad/quarantine/", {"reason": "again"}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "PLUGIN_ALREADY_QUARANTINED")
    release = client.post("/api/v1/plugins/bad/release/", {"reason": "disk replaced"}, format="json")
    assert (
        release.status_code == 202 and release.json()["quorum"] == 1 and release.json()["status"] == "pending"
    )


def test_tenant_b_cannot_see_or_change_tenant_as_plugins(acme_alice):
    healthy_and_degraded()
    item = ReviewItem.objects.get()
    eve = PrincipalFactory(tenant=TenantFactory(slug="globex"), name="eve", human=True, capabilities=ALL)
    client = client_for(eve)
    assert client.get("/api/v1/plugins/").json()["results"] == []
    assert client.get("/api/v1/plugins/good/").status_code == 404
    assert client.get("/api/v1/plugins/health/").json()["plugins"] == []
    assert client.get("/api/v1/plugins/reviews/").json()["results"] == []
    before = LedgerEvent.objects.count()
    for path, body in [
        ("/api/v1/plugins/good/quarantine/", {"reason": "x"}),
        ("/api/v1/plugins/good/release/", {"reason": "x"}),
        (f"/api/v1/plugins/reviews/{item.pk}/decide/", {"decision": "quarantine", "reason": "x"}),
    ]:
        response = client.post(path, body, format="json")
        assert response.status_code == 404 and response.json()["code"] in ("PLUGIN_NOT_FOUND", "NOT_FOUND"), (
            path
        )
    assert LedgerEvent.objects.count() == before
    assert Plugin.objects.get(name="good").state == "healthy" and ReviewItem.objects.get().status == "open"
    # A shared plugin is visible to every tenant, changed only with the platform grant.
    register("shared-bridge", shared=True)
    assert [r["name"] for r in client.get("/api/v1/plugins/").json()["results"]] == ["shared-bridge"]
    refused = client.post("/api/v1/plugins/shared-bridge/quarantine/", {"reason": "x"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "PLATFORM_SCOPE_REQUIRED")


def test_reading_needs_plugins_read():
    nobody = PrincipalFactory(tenant=TenantFactory(slug="acme"), name="nobody", human=True)
    response = client_for(nobody).get("/api/v1/plugins/")
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")
