"""Bearer tokens, capabilities and tenant scoping through the real API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.identity import services
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/ledger/events/"


def _get(client, path, token, **extra):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def test_a_token_with_the_capability_reads_the_ledger(client):
    principal = PrincipalFactory(
        capabilities=["ledger.read", "platform.ledger.read"]
    )  # key events: no tenant
    response = _get(client, EVENTS, token_for(principal))
    assert response.status_code == 200
    assert [e["type"] for e in response.json()["results"]][:1] == ["controlplane.ledger.key.activated"]
    assert response["X-Request-ID"]


def test_missing_capability_is_403_with_code(client):
    principal = PrincipalFactory(capabilities=["events.ingest"])
    response = _get(client, EVENTS, token_for(principal))
    assert response.status_code == 403
    assert response.json()["code"] == "CAPABILITY_MISSING"
    assert response.json()["request_id"] == response["X-Request-ID"]


@pytest.mark.parametrize("state", ["revoked", "expired", "garbage"])
def test_unusable_token_is_401_with_code(client, state):
    principal = PrincipalFactory(capabilities=["ledger.read"])
    if state == "garbage":
        secret = "cp_nope_nope"
    else:
        issued = services.token_issue(
            principal=principal,
            name="t",
            expires_at=timezone.now() - timedelta(seconds=1) if state == "expired" else None,
        )
        secret = issued.secret
        if state == "revoked":
            services.token_revoke(prefix=issued.token.prefix)
    response = _get(client, EVENTS, secret)
    assert response.status_code == 401
    assert response.json()["code"] == "AUTH_INVALID_TOKEN"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_repeated_bad_tokens_are_throttled_and_stop_writing_to_the_ledger(client, settings):
    settings.CONTROLPLANE_AUTH_FAILURE_LIMIT = 2
    codes = [_get(client, EVENTS, "cp_bad_token").json()["code"] for _ in range(5)]
    assert codes == [
        "AUTH_INVALID_TOKEN",
        "AUTH_INVALID_TOKEN",
        "AUTH_THROTTLED",
        "AUTH_THROTTLED",
        "AUTH_THROTTLED",
    ]
    assert LedgerEvent.objects.filter(type="controlplane.identity.signin.failed").count() == 2
    principal = PrincipalFactory(capabilities=["ledger.read"])
    # a valid token passes the throttled source: the throttle holds back bad tokens, not good ones
    assert _get(client, EVENTS, token_for(principal)).status_code == 200


def test_ledger_events_are_scoped_to_the_principals_tenant(client):
    mine, theirs = TenantFactory(slug="mine"), TenantFactory(slug="theirs")
    ledger_append(type="controlplane.test.mine", subject="x", data={}, tenant="mine")
    other = ledger_append(type="controlplane.test.theirs", subject="x", data={}, tenant="theirs")
    principal = PrincipalFactory(tenant=mine, capabilities=["ledger.read"])
    token = token_for(principal)
    types = {e["type"] for e in _get(client, EVENTS + "?page_size=500", token).json()["results"]}
    assert "controlplane.test.mine" in types and "controlplane.test.theirs" not in types
    assert _get(client, f"{EVENTS}{other.seq}/", token).status_code == 404
    assert theirs.slug == "theirs"


def test_ledger_filters_and_cursor_pagination(client):
    for i in range(5):
        ledger_append(type="controlplane.test.paged", subject=f"p/{i}", data={"i": i})
    token = token_for(PrincipalFactory(capabilities=["ledger.read", "platform.ledger.read"]))
    page = _get(client, EVENTS + "?type=controlplane.test.paged&page_size=2", token).json()
    assert [e["data"]["i"] for e in page["results"]] == [0, 1]
    page2 = client.get(page["next"], HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert [e["data"]["i"] for e in page2["results"]] == [2, 3]
    seq_range = _get(client, EVENTS + "?seq_from=3&seq_to=4", token).json()
    assert [e["seq"] for e in seq_range["results"]] == [3, 4]


def test_event_detail_serves_exactly_what_was_signed(client):
    event = ledger_append(type="controlplane.test.detail", subject="d", data={"k": "v"})
    token = token_for(PrincipalFactory(capabilities=["ledger.read", "platform.ledger.read"]))
    body = _get(client, f"{EVENTS}{event.seq}/", token).json()
    assert body["hash"] == event.hash and body["canonical"] == event.canonical
    assert body["data"] == {"k": "v"}


def test_verify_endpoint(client):
    from controlplane.ledger.tasks import ledger_verify_task

    ledger_append(type="controlplane.test.v", subject="v", data={})
    token = token_for(PrincipalFactory(capabilities=["ledger.verify"]))
    started = _get(client, "/api/v1/ledger/verify/", token)
    assert started.status_code == 202  # a job (tests have a broker but no worker): run it as one would
    ledger_verify_task(started.json()["job"])
    body = _get(client, started.json()["status_url"], token).json()
    assert body["ok"] is True and body["events_checked"] >= 2


def test_checkpoints_endpoint(client):
    from controlplane.ledger.checkpoints import checkpoint_create

    ledger_append(type="controlplane.test.c", subject="c", data={})
    checkpoint = checkpoint_create()
    token = token_for(PrincipalFactory(capabilities=["ledger.read"]))
    body = _get(client, "/api/v1/ledger/checkpoints/", token).json()
    assert body["results"][0]["seq"] == checkpoint.seq


def test_readyz_reports_database_broker_and_key(client):
    ledger_append(type="controlplane.test.r", subject="r", data={})
    token = token_for(PrincipalFactory(capabilities=["system.read"]))
    body = _get(client, "/readyz", token).json()
    assert body["ready"] is True
    assert body["checks"]["database"] == {"ok": True, "vendor": "postgresql"}
    assert body["checks"]["broker"] == {"ok": True, "mode": "redis"}
    assert body["checks"]["signing_key"]["ok"] is True


def test_readyz_fails_closed_when_the_broker_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    token = token_for(PrincipalFactory(capabilities=["system.read"]))
    response = _get(client, "/readyz", token)
    assert response.status_code == 503 and response.json()["checks"]["broker"]["ok"] is False


def test_request_id_is_echoed_and_stored_on_caused_events(client):
    principal = PrincipalFactory(capabilities=["ledger.read"])
    _get(client, EVENTS, "cp_wrong", HTTP_X_REQUEST_ID="req-abc-1")
    failed = LedgerEvent.objects.filter(type="controlplane.identity.signin.failed").get()
    assert failed.request_id == "req-abc-1"
    assert principal.ref


def test_tenant_less_events_are_visible_only_to_platform_principals(client):
    """Before, every tenant's `ledger.read` saw the installation's tenant-less events (failed sign-ins from
    anywhere, global kill switch acts)."""
    tenant = TenantFactory()
    services.auth_failure_record(source="10.9.9.9", method="password", username="someone")
    platform_act = ledger_append(type="controlplane.test.platform", subject="x", data={}, tenant="")
    reader = token_for(PrincipalFactory(tenant=tenant, capabilities=["ledger.read"]))
    types = {e["type"] for e in _get(client, EVENTS + "?page_size=500", reader).json()["results"]}
    assert "controlplane.identity.signin.failed" not in types and "controlplane.test.platform" not in types
    assert _get(client, f"{EVENTS}{platform_act.seq}/", reader).status_code == 404
    operator = token_for(
        PrincipalFactory(tenant=tenant, capabilities=["ledger.read", "platform.ledger.read"])
    )
    types = {e["type"] for e in _get(client, EVENTS + "?page_size=500", operator).json()["results"]}
    assert {"controlplane.identity.signin.failed", "controlplane.test.platform"} <= types
    assert _get(client, f"{EVENTS}{platform_act.seq}/", operator).status_code == 200


def test_a_failed_sign_in_records_a_keyed_hash_of_the_username_never_the_text(client):
    """A password typed into the username field must not become an immutable, readable record."""
    typed = "correct-horse-battery-staple"
    client.post("/login/", {"username": typed, "password": "x"})
    event = LedgerEvent.objects.get(type="controlplane.identity.signin.failed")
    assert typed not in event.canonical
    assert "username" not in event.data
    assert event.data["username_hmac"] == services.username_hmac(typed)
    assert len(event.data["username_hmac"]) == 64 and event.tenant == ""
