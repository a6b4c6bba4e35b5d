"""Twilio conformance: Twilio's documented form vector and its bodySHA256 JSON vector (through the
twilio SDK's RequestValidator), the URL rebuilt from CONTROLPLANE_PUBLIC_URL and never from the Host or
X-Forwarded-* headers, refusals with codes and nothing written, MessageSid deduplicated, and an approval
by WhatsApp reply governed as the console."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from approvals.models import ApprovalStatus
from controlplane.channels.providers.twilio import twilio_signature_check
from controlplane.kernel.errors import ControlPlaneError
from tests.channels.chat import agent, connect, messages, open_request, person, url, written

pytestmark = pytest.mark.django_db

AUTH_TOKEN = "twilio-auth-token"
PUBLIC = "https://cp.example.com"
SENDER = "whatsapp:+14155550100"


def test_twilios_documented_form_vector():
    # "Webhooks security": auth token 12345, this URL and these parameters.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    page = "https://mycompany.com/myapp.php?foo=1&bar=2"
    twilio_signature_check(
        auth_token="12345", url=page, params=params, signature="0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )
    with pytest.raises(ControlPlaneError) as exc:
        twilio_signature_check(
            auth_token="12345",
            url=page,
            params={**params, "Digits": "9"},
            signature="0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
        )
    assert exc.value.code == "CHANNEL_SIGNATURE_INVALID"


def test_twilios_documented_json_vector():
    body = '{"property": "value", "boolean": true}'
    digest = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    page = f"https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256={digest}"
    twilio_signature_check(
        auth_token="12345", url=page, params=body, signature="a9nBmqA0ju/hNViExpshrM61xv4="
    )
    with pytest.raises(ControlPlaneError) as exc:
        twilio_signature_check(
            auth_token="12345", url=page, params=body + " ", signature="a9nBmqA0ju/hNViExpshrM61xv4="
        )
    assert exc.value.code == "CHANNEL_SIGNATURE_INVALID"


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.CONTROLPLANE_PUBLIC_URL = PUBLIC


@pytest.fixture
def twilio():
    return connect(
        "twilio", {"auth_token": AUTH_TOKEN, "account_sid": "AC123", "from": "whatsapp:+14155238886"}
    )


def form(text: str, *, sid: str = "SM0001", sender: str = SENDER) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": "AC123",
        "From": sender,
        "To": "whatsapp:+14155238886",
        "Body": text,
    }


def deliver(
    client,
    connection,
    data,
    *,
    signed_url: str | None = None,
    token: str = AUTH_TOKEN,
    signature=None,
    **headers,
):
    path = url("twilio", connection)
    if signature is None:
        signature = RequestValidator(token).compute_signature(signed_url or PUBLIC + path, data)
    if signature:
        headers["X-Twilio-Signature"] = signature
    return client.post(path, data=data, headers=headers)


def test_a_message_signed_over_the_public_url_is_accepted_behind_a_proxy(client, twilio):
    response = deliver(client, twilio, form("hello"), HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    assert messages()[0]["sender"] == SENDER and messages()[0]["delivery_id"] == "SM0001"


def test_a_signature_over_the_forwarded_host_is_refused(client, twilio):
    path = url("twilio", twilio)
    before = written()
    response = deliver(
        client,
        twilio,
        form("hello"),
        signed_url="https://evil.example.net" + path,
        HTTP_X_FORWARDED_HOST="evil.example.net",
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert response.status_code == 401 and response.json()["code"] == "CHANNEL_SIGNATURE_INVALID"
    assert written() == before


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [({"signature": ""}, "CHANNEL_SIGNATURE_MISSING"), ({"token": "wrong"}, "CHANNEL_SIGNATURE_INVALID")],
)
def test_bad_signatures_are_refused_and_write_nothing(client, twilio, kwargs, code):
    before = written()
    response = deliver(client, twilio, form("hi"), **kwargs)
    assert response.status_code == 401 and response.json()["code"] == code
    assert written() == before


def test_a_connection_without_an_auth_token_refuses(client):
    unconfigured = connect("twilio", {"account_sid": "AC123"})
    before = written()
    assert deliver(client, unconfigured, form("hi")).json()["code"] == "CHANNEL_NOT_CONFIGURED"
    assert written() == before


def test_a_message_sid_seen_before_is_a_duplicate(client, twilio):
    assert deliver(client, twilio, form("hi")).status_code == 200
    before = written()
    again = deliver(client, twilio, form("hi"))
    assert again.status_code == 409 and again.json()["code"] == "CHANNEL_DUPLICATE_DELIVERY"
    assert written() == before


def test_a_reply_approves_as_the_mapped_person_and_never_again(client, twilio):
    person(twilio, "alice", SENDER)
    approval = open_request(agent(twilio))
    text = f"APPROVE {approval.id[:12]} {approval.content_hash[:12]} ok from the pager"
    response = deliver(client, twilio, form(text))
    assert response.status_code == 200 and response["X-Controlplane-Outcome"] == "ok"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    again = deliver(client, twilio, form(text, sid="SM0002"))
    assert again["X-Controlplane-Outcome"] == "APPROVAL_NOT_PENDING"


@pytest.mark.parametrize(
    ("sender", "requester_is_sender", "code"),
    [
        ("whatsapp:+19995550000", False, "CHANNEL_IDENTITY_UNLINKED"),
        (SENDER, True, "APPROVAL_SELF_APPROVAL"),
    ],
)
def test_replies_are_governed_as_in_the_console(client, twilio, sender, requester_is_sender, code):
    alice = person(twilio, "alice", SENDER)
    approval = open_request(alice if requester_is_sender else agent(twilio))
    text = f"approve {approval.id[:12]} {approval.content_hash[:12]} fine"
    response = deliver(client, twilio, form(text, sender=sender))
    assert response["X-Controlplane-Outcome"] == code
    assert approval.decisions.count() == 0
