"""Meta (WhatsApp Cloud API) conformance: X-Hub-Signature-256 over the raw bytes as received (Meta
escapes non-ASCII; re-serialised JSON does not verify), the GET hub.challenge handshake, refusals with
codes and nothing written, message ids deduplicated, approvals by text reply governed as the console."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from approvals.models import ApprovalStatus
from controlplane.channels.providers.base import hub_signature_check
from tests.channels.chat import agent, connect, messages, open_request, person, url, written

pytestmark = pytest.mark.django_db

APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "meatyhamhock"
SENDER = "16505551234"


def test_the_same_sha256_scheme_as_githubs_documented_vector():
    # Meta's X-Hub-Signature-256 is GitHub's scheme (HMAC-SHA256 of the raw body, "sha256=" + hex).
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    hub_signature_check(header=header, secret="It's a Secret to Everybody", body=b"Hello, World!")


@pytest.fixture
def meta():
    return connect(
        "meta",
        {
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "access_token": "EAAG",
            "phone_number_id": "1",
        },
    )


def notification(text: str, *, message_id: str = "wamid.HBgL1", sender: str = SENDER) -> bytes:
    """A messages notification as Meta sends it: compact, non-ASCII escaped as \\uXXXX."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1"},
                            "contacts": [{"profile": {"name": "Zoë"}, "wa_id": sender}],
                            "messages": [
                                {
                                    "from": sender,
                                    "id": message_id,
                                    "timestamp": "1700000000",
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(client, connection, body: bytes, signature: str | None = None):
    headers = {"X-Hub-Signature-256": sign(body) if signature is None else signature}
    if signature == "":
        headers = {}
    return client.post(url("meta", connection), data=body, content_type="application/json", headers=headers)


def test_handshake_answers_the_challenge_with_the_verify_token(client, meta):
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    response = client.get(url("meta", meta), query)
    assert response.status_code == 200 and response.content == b"1158201444"
    before = written()
    wrong = client.get(url("meta", meta), {**query, "hub.verify_token": "guess"})
    assert wrong.status_code == 403 and wrong.json()["code"] == "CHANNEL_VERIFY_TOKEN_INVALID"
    assert written() == before


def test_handshake_without_a_verify_token_is_not_configured(client):
    unconfigured = connect("meta", {"app_secret": APP_SECRET})
    query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
    assert client.get(url("meta", unconfigured), query).json()["code"] == "CHANNEL_NOT_CONFIGURED"


def test_the_raw_escaped_bytes_verify_and_reserialised_json_does_not(client, meta):
    body = notification("café ✓")
    assert b"\\u00e9" in body  # as Meta sends it
    reserialised = json.dumps(json.loads(body), ensure_ascii=False).encode()
    before = written()
    refused = deliver(client, meta, body, signature=sign(reserialised))
    assert refused.status_code == 401 and refused.json()["code"] == "CHANNEL_SIGNATURE_INVALID"
    assert written() == before
    accepted = deliver(client, meta, body)
    assert accepted.status_code == 200
    assert messages()[0]["text"] == "café ✓" and messages()[0]["delivery_id"] == "wamid.HBgL1"


@pytest.mark.parametrize(
    ("signature", "code"),
    [
        ("", "CHANNEL_SIGNATURE_MISSING"),
        (sign(b"{}"), "CHANNEL_SIGNATURE_INVALID"),
        ("md5=1", "CHANNEL_SIGNATURE_INVALID"),
    ],
)
def test_bad_signatures_are_refused_and_write_nothing(client, meta, signature, code):
    before = written()
    response = deliver(client, meta, notification("hi"), signature=signature)
    assert response.status_code == 401 and response.json()["code"] == code
    assert written() == before


def test_a_connection_without_an_app_secret_refuses(client):
    unconfigured = connect("meta", {"verify_token": VERIFY_TOKEN})
    before = written()
    assert deliver(client, unconfigured, notification("hi")).json()["code"] == "CHANNEL_NOT_CONFIGURED"
    assert written() == before


def test_a_message_id_seen_before_is_a_duplicate(client, meta):
    assert deliver(client, meta, notification("hi")).status_code == 200
    before = written()
    again = deliver(client, meta, notification("hi"))
    assert again.status_code == 409 and again.json()["code"] == "CHANNEL_DUPLICATE_DELIVERY"
    assert written() == before


def test_a_reply_approves_once_as_the_mapped_person(client, meta):
    person(meta, "alice", SENDER)
    approval = open_request(agent(meta))
    text = f"approve {approval.id[:12]} {approval.content_hash[:12]} seen on call"
    response = deliver(client, meta, notification(text))
    assert response.json()["status"] == "approved"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    later = deliver(client, meta, notification(text, message_id="wamid.HBgL2"))
    assert later.json()["code"] == "APPROVAL_NOT_PENDING"


@pytest.mark.parametrize(
    ("sender", "reason", "code"),
    [("19995550000", "fine", "CHANNEL_IDENTITY_UNLINKED"), (SENDER, "", "APPROVAL_REASON_REQUIRED")],
)
def test_replies_are_governed_as_in_the_console(client, meta, sender, reason, code):
    person(meta, "alice", SENDER)
    approval = open_request(agent(meta))
    text = f"approve {approval.id[:12]} {approval.content_hash[:12]} {reason}"
    response = deliver(client, meta, notification(text, sender=sender))
    assert response.json()["code"] == code
    assert approval.decisions.count() == 0
