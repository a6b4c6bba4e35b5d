"""GitHub conformance: GitHub's documented X-Hub-Signature-256 example, refusals with codes and nothing
written, X-GitHub-Delivery deduplicated, `ping`, and `/approve` comments governed as the console."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from approvals.models import ApprovalStatus
from controlplane.channels.providers.base import hub_signature_check
from controlplane.kernel.errors import ControlPlaneError
from tests import envelope
from tests.channels.chat import agent, connect, messages, open_request, person, url, written

pytestmark = pytest.mark.django_db

SECRET = "gh-webhook-secret"


def test_githubs_documented_example_verifies():
    # "Validating webhook deliveries": secret "It's a Secret to Everybody", payload "Hello, World!".
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    hub_signature_check(header=header, secret="It's a Secret to Everybody", body=b"Hello, World!")
    for secret, body, code in (
        ("It's a Secret to Everybody", b"Hello, World?", "CHANNEL_SIGNATURE_INVALID"),
        ("another secret", b"Hello, World!", "CHANNEL_SIGNATURE_INVALID"),
    ):
        with pytest.raises(ControlPlaneError) as exc:
            hub_signature_check(header=header, secret=secret, body=body)
        assert exc.value.code == code
    with pytest.raises(ControlPlaneError) as exc:
        hub_signature_check(header="sha1=abc", secret="s", body=b"")
    assert exc.value.code == "CHANNEL_SIGNATURE_INVALID"


@pytest.fixture
def github():
    return connect("github", {"webhook_secret": SECRET})


def deliver(
    client, connection, payload, *, event="issue_comment", delivery="d-1", secret=SECRET, signature=None
):
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    headers = {"X-GitHub-Event": event}
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    if signature is None:
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if signature:
        headers["X-Hub-Signature-256"] = signature
    return client.post(url("github", connection), data=body, content_type="application/json", headers=headers)


def comment(text: str, login: str = "octocat") -> dict:
    return {"action": "created", "comment": {"body": text}, "sender": {"login": login}}


def test_ping_is_answered_and_ledgered(client, github):
    response = deliver(
        client, github, {"zen": "Keep it logically awesome.", "sender": {"login": "octocat"}}, event="ping"
    )
    assert response.status_code == 200 and envelope.body(response) == {"ok": True, "pong": True}
    assert messages()[0]["kind"] == "github.ping" and messages()[0]["delivery_id"] == "d-1"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"signature": ""}, 401, "CHANNEL_SIGNATURE_MISSING"),
        ({"secret": "wrong"}, 401, "CHANNEL_SIGNATURE_INVALID"),
        ({"delivery": None}, 400, "CHANNEL_MALFORMED"),
    ],
)
def test_bad_deliveries_are_refused_and_write_nothing(client, github, kwargs, status, code):
    before = written()
    response = deliver(client, github, comment("hi"), **kwargs)
    assert response.status_code == status and response.json()["code"] == code
    assert written() == before


def test_a_connection_without_a_webhook_secret_refuses(client):
    unconfigured = connect("github", {"token": "ghp_x"})
    before = written()
    response = deliver(client, unconfigured, comment("hi"))
    assert response.json()["code"] == "CHANNEL_NOT_CONFIGURED" and written() == before


def test_a_redelivery_is_refused_as_a_duplicate(client, github):
    assert deliver(client, github, comment("hi")).status_code == 200
    before = written()
    again = deliver(client, github, comment("hi"))
    assert again.status_code == 409 and again.json()["code"] == "CHANNEL_DUPLICATE_DELIVERY"
    assert written() == before


def test_an_approve_comment_by_a_mapped_login_decides(client, github):
    person(github, "alice", "octocat")
    approval = open_request(agent(github))
    text = f"/approve {approval.id[:12]} {approval.content_hash[:12]} rollout looks healthy"
    response = deliver(client, github, comment(text))
    assert envelope.body(response) == {
        "ok": True,
        "action": "approve",
        "approval": approval.id,
        "status": "approved",
    }
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.decisions.get().reason == "rollout looks healthy"


@pytest.mark.parametrize(
    ("login", "text", "code"),
    [
        ("stranger", "/approve {id} {hash} fine", "CHANNEL_IDENTITY_UNLINKED"),
        ("octocat", "/approve {id} {wrong} fine", "APPROVAL_CONTENT_CHANGED"),
        ("octocat", "/approve {id} {hash}", "APPROVAL_REASON_REQUIRED"),
        ("octocat", "/approve abc {hash} fine", "CHANNEL_COMMAND_INVALID"),
    ],
)
def test_comments_are_governed_as_in_the_console(client, github, login, text, code):
    person(github, "alice", "octocat")
    approval = open_request(agent(github))
    body = text.format(id=approval.id[:12], hash=approval.content_hash[:12], wrong="b" * 12)
    response = deliver(client, github, comment(body, login=login))
    assert response.json()["ok"] is False and response.json()["code"] == code
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING and approval.decisions.count() == 0


def test_the_requester_cannot_approve_their_own_request_from_github(client, github):
    alice = person(github, "alice", "octocat")
    approval = open_request(alice)
    text = f"/approve {approval.id[:12]} {approval.content_hash[:12]} mine"
    assert deliver(client, github, comment(text)).json()["code"] == "APPROVAL_SELF_APPROVAL"
    assert approval.decisions.count() == 0
