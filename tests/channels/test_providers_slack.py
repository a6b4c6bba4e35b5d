"""Slack conformance: Slack's published v0 signing example, the 300 s window, refusals with codes and
nothing written, retries deduplicated on event_id, and approvals from a button click or a slash command
decided exactly as the console decides them."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import parse_qs, urlencode

import orjson
import pytest

from approvals.models import ApprovalStatus
from controlplane.channels.providers.slack import (
    APPROVE_ACTION,
    REASON_ACTION,
    REJECT_ACTION,
    slack_signature_check,
)
from controlplane.channels.selectors import webhook_rejection_counts
from controlplane.channels.services.connections import channel_disconnect
from controlplane.kernel.errors import ControlPlaneError
from tests import envelope
from tests.channels.chat import CONTENT_HASH, agent, connect, messages, open_request, person, url, written
from tests.console.flow import eager_tasks  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

# Slack's documented example ("Verifying requests from Slack"): signing secret, timestamp, a slash
# command's body and the signature Slack computed for them.
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
SECRET = "test-signing-secret"


def test_slacks_published_example_verifies_at_its_time_and_the_300s_edges():
    at = int(SLACK_TIMESTAMP)
    for now in (at, at + 300, at - 300):
        slack_signature_check(
            secret=SLACK_SECRET,
            timestamp=SLACK_TIMESTAMP,
            signature=SLACK_SIGNATURE,
            body=SLACK_BODY,
            now=now,
        )
    for now in (at + 301, at - 301):
        with pytest.raises(ControlPlaneError) as exc:
            slack_signature_check(
                secret=SLACK_SECRET,
                timestamp=SLACK_TIMESTAMP,
                signature=SLACK_SIGNATURE,
                body=SLACK_BODY,
                now=now,
            )
        assert exc.value.code == "CHANNEL_STALE_TIMESTAMP"
    for secret, body in (("another-secret", SLACK_BODY), (SLACK_SECRET, SLACK_BODY + b"x")):
        with pytest.raises(ControlPlaneError) as exc:
            slack_signature_check(
                secret=secret, timestamp=SLACK_TIMESTAMP, signature=SLACK_SIGNATURE, body=body, now=at
            )
        assert exc.value.code == "CHANNEL_SIGNATURE_INVALID"


def sign(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@pytest.fixture
def slack():
    return connect("slack", {"signing_secret": SECRET, "bot_token": "xoxb-test"})


def event_body(text: str, *, event_id: str = "Ev01", user: str = "U100") -> bytes:
    return orjson.dumps(
        {
            "type": "event_callback",
            "event_id": event_id,
            "event": {"type": "message", "user": user, "text": text, "channel": "C1"},
        }
    )


def post_event(client, connection, body: bytes, headers: dict[str, str] | None = None, **extra):
    headers = sign(body) if headers is None else headers
    return client.post(
        url("slack-events", connection),
        data=body,
        content_type="application/json",
        headers={**headers, **extra},
    )


def test_url_verification_is_answered_with_its_challenge(client, slack):
    body = orjson.dumps({"type": "url_verification", "challenge": "3eZbrw1aB", "token": "x"})
    response = post_event(client, slack, body)
    assert response.status_code == 200 and envelope.body(response) == {"challenge": "3eZbrw1aB"}


def test_a_message_is_ledgered_normalised(client, slack):
    response = post_event(client, slack, event_body("hello from chat"))
    assert response.status_code == 200 and envelope.body(response) == {"ok": True}
    assert messages() == [
        {
            "provider": "slack",
            "connection": "acme/slack/ops",
            "sender": "U100",
            "text": "hello from chat",
            "truncated": False,
            "kind": "slack.message",
            "delivery_id": "Ev01",
            "outcome": {"ok": True},
        }
    ]


@pytest.mark.parametrize(
    ("headers", "code"),
    # Signed when the test runs, not when it is collected: a suite of many minutes would otherwise make
    # every signature stale.
    [
        (lambda: {}, "CHANNEL_SIGNATURE_MISSING"),
        (lambda: sign(event_body("hi"), secret="wrong"), "CHANNEL_SIGNATURE_INVALID"),
        (lambda: sign(event_body("hi"), timestamp=int(time.time()) - 3600), "CHANNEL_STALE_TIMESTAMP"),
        (lambda: sign(event_body("hi"), timestamp=int(time.time()) + 3600), "CHANNEL_STALE_TIMESTAMP"),
        (lambda: sign(event_body("tampered")), "CHANNEL_SIGNATURE_INVALID"),
    ],
    ids=["unsigned", "wrong-secret", "stale", "future", "tampered"],
)
def test_bad_deliveries_are_refused_with_their_code_and_write_nothing(client, slack, headers, code):
    before = written()
    response = post_event(client, slack, event_body("hi"), headers=headers())
    assert response.status_code == 401 and response.json()["code"] == code
    assert written() == before
    assert webhook_rejection_counts(adapter="slack-events") == {code: 1}
    assert webhook_rejection_counts(adapter=f"slack-events:{slack.key}") == {code: 1}


def test_a_connection_without_its_secret_refuses_everything(client):
    unconfigured = connect("slack", {"bot_token": "xoxb-test"})
    before = written()
    response = post_event(client, unconfigured, event_body("hi"))
    assert response.status_code == 401 and response.json()["code"] == "CHANNEL_NOT_CONFIGURED"
    unsigned = post_event(client, unconfigured, event_body("hi"), headers={})
    assert unsigned.json()["code"] == "CHANNEL_NOT_CONFIGURED"
    assert written() == before


def test_a_disconnected_connection_refuses_and_an_unknown_one_is_not_found(client, slack):
    channel_disconnect(connection=slack, actor="test")
    before = written()
    assert post_event(client, slack, event_body("hi")).json()["code"] == "CHANNEL_NOT_CONFIGURED"
    assert post_event(client, "ch-nope", event_body("hi")).json()["code"] == "CHANNEL_NOT_FOUND"
    assert written() == before


def test_a_retry_of_the_same_event_is_refused_as_a_duplicate(client, slack):
    assert post_event(client, slack, event_body("hi")).status_code == 200
    before = written()
    retry = post_event(client, slack, event_body("hi"), **{"X-Slack-Retry-Num": "1"})
    assert retry.status_code == 409 and retry.json()["code"] == "CHANNEL_DUPLICATE_DELIVERY"
    assert written() == before


def card_click(
    approval,
    *,
    user: str,
    action: str = APPROVE_ACTION,
    reason: str = "checked the diff",
    content_hash: str | None = None,
    trigger: str = "trig-1",
) -> bytes:
    payload = {
        "type": "block_actions",
        "trigger_id": trigger,
        "user": {"id": user},
        "actions": [{"action_id": action, "value": f"{approval.id}:{content_hash or approval.content_hash}"}],
        "state": {"values": {"reason-block": {REASON_ACTION: {"type": "plain_text_input", "value": reason}}}},
    }
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def click(client, connection, body: bytes):
    return client.post(
        url("slack-interactivity", connection),
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers=sign(body),
    )


def test_an_approve_click_by_a_mapped_person_decides_the_approval(client, slack):
    person(slack, "alice", "U100")
    approval = open_request(agent(slack))
    response = click(client, slack, card_click(approval, user="U100"))
    assert response.status_code == 200
    assert envelope.body(response) == {
        "ok": True,
        "action": "approve",
        "approval": approval.id,
        "status": "approved",
    }
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    decision = approval.decisions.get()
    assert (decision.approver.name, decision.reason) == ("alice", "checked the diff")


def test_a_reject_click_rejects(client, slack):
    person(slack, "alice", "U100")
    approval = open_request(agent(slack))
    response = click(client, slack, card_click(approval, user="U100", action=REJECT_ACTION))
    assert response.json()["status"] == "rejected"


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unmapped", "CHANNEL_IDENTITY_UNLINKED"),
        ("requester", "APPROVAL_SELF_APPROVAL"),
        ("wrong hash", "APPROVAL_CONTENT_CHANGED"),
        ("no reason", "APPROVAL_REASON_REQUIRED"),
    ],
)
def test_a_click_is_governed_as_in_the_console(client, slack, case, code):
    alice = person(slack, "alice", "U100")
    requester = alice if case == "requester" else agent(slack)
    approval = open_request(requester)
    body = card_click(
        approval,
        user="U999" if case == "unmapped" else "U100",
        content_hash="b" * 64 if case == "wrong hash" else None,
        reason="" if case == "no reason" else "checked",
    )
    response = click(client, slack, body)
    assert response.status_code == 200 and response.json()["ok"] is False
    assert response.json()["code"] == code
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING and approval.decisions.count() == 0
    assert messages()[-1]["outcome"] == {"ok": False, "action": "approve", "code": code}


def test_the_same_click_twice_decides_once(client, slack):
    person(slack, "alice", "U100")
    approval = open_request(agent(slack), quorum=2)
    body = card_click(approval, user="U100")
    assert click(client, slack, body).json()["ok"] is True
    again = click(client, slack, body)
    assert again.status_code == 409 and again.json()["code"] == "CHANNEL_DUPLICATE_DELIVERY"
    other_trigger = click(client, slack, card_click(approval, user="U100", trigger="trig-2"))
    assert other_trigger.json()["code"] == "APPROVAL_DUPLICATE_DECISION"
    assert approval.decisions.count() == 1


def test_quorum_two_needs_two_mapped_people(client, slack):
    person(slack, "alice", "U100")
    person(slack, "bob", "U200")
    approval = open_request(agent(slack), quorum=2, content_hash=CONTENT_HASH)
    assert click(client, slack, card_click(approval, user="U100")).json()["status"] == "pending"
    second = click(client, slack, card_click(approval, user="U200", trigger="trig-2"))
    assert second.json()["status"] == "approved"


def command(client, connection, text: str, *, user: str = "U100", trigger: str = "cmd-1"):
    body = urlencode({"command": "/cp", "text": text, "user_id": user, "trigger_id": trigger}).encode()
    return client.post(
        url("slack-commands", connection),
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers=sign(body),
    )


def test_slash_command_lists_and_decides_with_prefixes(client, slack):
    person(slack, "alice", "U100")
    approval = open_request(agent(slack))
    listing = command(client, slack, "approvals")
    assert listing.json()["text"].startswith(f"{approval.id[:12]} {approval.content_hash[:12]} high")
    decided = command(
        client, slack, f"approve {approval.id[:10]} {approval.content_hash[:10]} ok by me", trigger="cmd-2"
    )
    assert decided.json()["status"] == "approved"
    assert approval.decisions.get().reason == "ok by me"


def test_slash_command_of_another_grammar_is_refused_with_its_code(client, slack):
    response = command(client, slack, "please approve everything")
    assert response.json()["code"] == "CHANNEL_COMMAND_INVALID"


@pytest.mark.usefixtures("eager_tasks")
def test_after_the_commit_the_card_is_updated_with_the_outcome(
    client, settings, stand_in, django_capture_on_commit_callbacks
):
    settings.CONTROLPLANE_SLACK_API_URL = stand_in.base + "/api/"
    stand_in.answer = lambda path: (200, {"ok": True, "channel": "C1", "ts": "1700.1"})
    slack = connect("slack", {"signing_secret": SECRET, "bot_token": "xoxb-9"})
    person(slack, "alice", "U100")
    approval = open_request(agent(slack))
    payload = {
        "type": "block_actions",
        "trigger_id": "trig-card",
        "user": {"id": "U100"},
        "container": {"type": "message", "channel_id": "C1", "message_ts": "1700.1"},
        "actions": [{"action_id": APPROVE_ACTION, "value": f"{approval.id}:{approval.content_hash}"}],
        "state": {"values": {"r": {REASON_ACTION: {"value": "fine"}}}},
    }
    body = urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = click(client, slack, body)
    assert response.json()["status"] == "approved" and stand_in.seen == []  # answered before any call out
    for callback in callbacks:
        callback()
    (seen,) = stand_in.seen
    assert seen["path"] == "/api/chat.update"
    sent = (
        parse_qs(seen["body"].decode()) if not seen["body"].startswith(b"{") else orjson.loads(seen["body"])
    )
    text = sent["text"][0] if isinstance(sent["text"], list) else sent["text"]
    assert text == "restart checkout: approved (approve by alice: fine)"
