"""Refused deliveries: kept per connection for its admins with mismatch diagnostics (which common
variant would have verified — never accepted, never in the answer), and ledgered as one digest per
connection and period rather than one event per refusal."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.core.cache import cache

from controlplane.channels.services.refusals import channel_refusals_digest, channel_refusals_recent
from controlplane.ledger.models import LedgerEvent
from tests.channels.chat import connect, url, written
from tests.channels.test_providers_twilio import AUTH_TOKEN, PUBLIC, deliver, form

pytestmark = pytest.mark.django_db

SECRET = "gh-secret"


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


def github_post(client, connection, body: bytes, signed_over: bytes, delivery: str = "d-1"):
    signature = "sha256=" + hmac.new(SECRET.encode(), signed_over, hashlib.sha256).hexdigest()
    return client.post(
        url("github", connection),
        data=body,
        content_type="application/json",
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature},
    )


def test_a_body_re_encoded_on_the_way_is_refused_and_the_admins_are_told_why(client):
    github = connect("github", {"webhook_secret": SECRET})
    payload = {"ref": "refs/heads/main", "note": "Zoë"}
    signed = json.dumps(payload, separators=(",", ":")).encode()  # as GitHub sent it (escaped)
    received = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()  # a proxy re-encoded
    before = written()
    response = github_post(client, github, received, signed)
    assert response.status_code == 401 and response.json()["code"] == "CHANNEL_SIGNATURE_INVALID"
    assert "re-serialised" not in response.content.decode()  # diagnostics never go to the sender
    assert written() == before
    (refusal,) = channel_refusals_recent(connection=github)
    assert (refusal["adapter"], refusal["code"]) == ("github", "CHANNEL_SIGNATURE_INVALID")
    assert refusal["diagnostic"].startswith("would verify over the JSON re-serialised compactly")


def test_a_wrong_secret_is_diagnosed_as_such(client):
    github = connect("github", {"webhook_secret": SECRET})
    response = client.post(
        url("github", github),
        data=b"{}",
        content_type="application/json",
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "d",
            "X-Hub-Signature-256": "sha256=" + "0" * 64,
        },
    )
    assert response.json()["code"] == "CHANNEL_SIGNATURE_INVALID"
    assert channel_refusals_recent(connection=github)[0]["diagnostic"].startswith(
        "no common variant verifies"
    )


def test_twilio_signing_the_host_headers_url_is_named_in_the_diagnostics(client, settings):
    settings.CONTROLPLANE_PUBLIC_URL = PUBLIC
    twilio = connect("twilio", {"auth_token": AUTH_TOKEN})
    path = url("twilio", twilio)
    response = deliver(client, twilio, form("hi"), signed_url="http://testserver" + path)
    assert response.status_code == 401
    (refusal,) = channel_refusals_recent(connection=twilio)
    assert refusal["diagnostic"] == (
        f"Twilio signed http://testserver{path} (the Host header's URL): set CONTROLPLANE_PUBLIC_URL to what "
        "Twilio calls"
    )


def test_refusals_are_ledgered_as_one_digest_per_connection_and_period(client):
    github = connect("github", {"webhook_secret": SECRET})
    other = connect("github", {"webhook_secret": SECRET}, tenant_slug="globex")
    for n in range(3):
        github_post(client, github, b'{"a":1}', b"tampered", delivery=f"d-{n}")
    push = b'{"ref":"refs/heads/main","repository":{"full_name":"acme/checkout"}}'
    assert github_post(client, github, push, push, delivery="d-0").status_code == 200
    assert github_post(client, github, push, push, delivery="d-0").status_code == 409  # a duplicate
    github_post(client, other, b"{}", b"x")
    assert not LedgerEvent.objects.filter(type="controlplane.channels.refusals.digested").exists()
    assert channel_refusals_digest() == 2
    digests = {
        e.tenant: e for e in LedgerEvent.objects.filter(type="controlplane.channels.refusals.digested")
    }
    assert digests["acme"].data == {
        "connection": "acme/github/ops",
        "total": 4,
        "counts": {"github": {"CHANNEL_SIGNATURE_INVALID": 3, "CHANNEL_DUPLICATE_DELIVERY": 1}},
    }
    assert digests["acme"].reason_codes == ["CHANNEL_DUPLICATE_DELIVERY", "CHANNEL_SIGNATURE_INVALID"]
    assert digests["globex"].data["total"] == 1
    assert channel_refusals_digest() == 0  # nothing new: nothing written
    github_post(client, github, b"{}", b"y", delivery="d-9")
    assert channel_refusals_digest() == 1
    latest = (
        LedgerEvent.objects.filter(type="controlplane.channels.refusals.digested").order_by("-seq").first()
    )
    assert latest.data["total"] == 1
