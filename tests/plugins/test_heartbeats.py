"""POST /api/v1/plugins/{name}/heartbeats/: signed with the plugin's own key, sent with its own token.

A good heartbeat is evidence only (no ledger event); a refused one carries its code, and a signature policy
violation is counted and quarantines the plugin at once."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rest_framework.test import APIClient

from controlplane.kernel import signatures
from controlplane.ledger.models import LedgerEvent
from tests.envelope import without_meta
from tests.identity.factories import PrincipalFactory, token_for
from tests.plugins.support import register

pytestmark = pytest.mark.django_db


def post(runner, body: bytes, headers: dict[str, str], token: str | None = None):
    client = APIClient()
    if token is not False:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token or runner.token}")
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return client.post(
        f"/api/v1/plugins/{runner.name}/heartbeats/", data=body, content_type="application/json", **extra
    )


def plugin_events():
    return LedgerEvent.objects.filter(type__startswith="controlplane.plugin.").exclude(
        type="controlplane.plugin.registered"
    )


def test_a_signed_heartbeat_is_recorded_as_evidence_and_not_ledgered():
    runner = register("runner-eu")
    body = runner.body(checks={"queue": "ok"})
    reply = post(runner, body, runner.headers(body))
    assert reply.status_code == 202, reply.json()
    assert without_meta(reply) == {"plugin": "runner-eu", "accepted": True, "sequence": 1, "state": "unknown"}
    plugin = runner.refresh()
    assert (plugin.last_sequence, plugin.last_instance, plugin.last_checks) == (
        1,
        runner.instance,
        {"queue": "ok"},
    )
    assert plugin.digest_count == 1 and len(plugin.digest_hash) == 64
    assert not plugin_events().exists()


def test_a_forged_heartbeat_is_refused_counted_and_quarantines_the_plugin():
    runner = register("runner-eu")
    body = runner.body()
    reply = post(runner, body, runner.headers(body, key=Ed25519PrivateKey.generate()))
    assert (reply.status_code, reply.json()["code"]) == (401, "PLUGIN_SIGNATURE_INVALID")
    plugin = runner.refresh()
    assert plugin.violations == 1 and plugin.last_violation["code"] == "PLUGIN_SIGNATURE_INVALID"
    assert plugin.last_sequence == 0  # nothing of the forged heartbeat was taken as evidence
    assert (plugin.state, plugin.state_codes, plugin.severity) == (
        "quarantined",
        ["PLUGIN_SIGNATURE_INVALID"],
        "critical",
    )
    [event] = plugin_events()
    assert event.type == "controlplane.plugin.transitioned" and event.reason_codes == [
        "PLUGIN_SIGNATURE_INVALID"
    ]
    assert event.data["evidence"]["violations"] == 1


def test_an_hmac_signature_is_an_unknown_key_and_an_old_sequence_is_a_replay():
    runner = register("runner-eu", supervision={"signature_violations": 3})
    body = runner.body()
    headers = runner.headers(body)
    secret = signatures.hmac_secret_generate()
    hmac_headers = {
        **headers,
        "webhook-signature": signatures.sign_hmac(
            secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body
        ),
    }
    reply = post(runner, body, hmac_headers)
    assert (reply.status_code, reply.json()["code"]) == (401, "PLUGIN_KEY_UNKNOWN")
    assert post(runner, body, headers).status_code == 202
    reply = post(runner, body, runner.headers(body))  # the same sequence again, freshly signed
    assert (reply.status_code, reply.json()["code"]) == (409, "PLUGIN_SEQUENCE_STALE")
    plugin = runner.refresh()
    # Under this plugin's tuned threshold of 3: decided on at once, not quarantined (a good heartbeat).
    assert plugin.violations == 2 and plugin.state == "healthy"


def test_refusals_that_are_not_violations_write_nothing():
    runner = register("runner-eu")
    body = runner.body()
    stale = post(runner, body, runner.headers(body, at=1_000_000_000))
    assert (stale.status_code, stale.json()["code"]) == (401, "STALE_TIMESTAMP")
    garbage = b'{"instance": "", "sequence": 1}'
    invalid = post(runner, garbage, runner.headers(garbage))
    assert (invalid.status_code, invalid.json()["code"]) == (400, "PLUGIN_HEARTBEAT_INVALID")
    plugin = runner.refresh()
    assert (plugin.violations, plugin.last_sequence, plugin.digest_count) == (0, 0, 0)
    assert not plugin_events().exists()


def test_only_the_plugins_own_principal_may_send_its_heartbeats():
    runner = register("runner-eu")
    other = register("runner-us")
    body = runner.body()
    reply = post(runner, body, runner.headers(body), token=other.token)
    assert (reply.status_code, reply.json()["code"]) == (403, "PLUGIN_PRINCIPAL_MISMATCH")
    nobody = PrincipalFactory(tenant=runner.principal.tenant, name="nobody")
    reply = post(runner, body, runner.headers(body), token=token_for(nobody))
    assert (reply.status_code, reply.json()["code"]) == (403, "CAPABILITY_MISSING")
    assert post(runner, body, runner.headers(body), token=False).status_code == 401
    assert runner.refresh().violations == 0 and runner.plugin.last_sequence == 0


def test_another_tenants_plugin_is_not_found():
    runner = register("runner-eu")
    from tests.identity.factories import TenantFactory

    stranger = register("spy", tenant=TenantFactory(slug="globex"))
    body = runner.body()
    reply = post(runner, body, runner.headers(body), token=stranger.token)
    assert (reply.status_code, reply.json()["code"]) == (404, "PLUGIN_NOT_FOUND")


def test_a_new_instance_id_is_counted_as_a_restart():
    runner = register("runner-eu")
    runner.beat()
    runner.restart()
    runner.beat()
    plugin = runner.refresh()
    assert len(plugin.restarts) == 1 and plugin.last_sequence == 1
    assert json.loads(json.dumps(plugin.last_checks)) == {}
