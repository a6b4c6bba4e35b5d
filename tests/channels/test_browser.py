"""Chat approvals end to end, in a real browser and against a local stand-in for Slack's API.

A person links their Slack identity in the console (the code goes to the Slack stand-in, typed back as
a signed Slack event); an agent's intent needing approval is posted to the channel by the outbox; a click
by an unlinked identity is refused; the linked person's click approves and the step runs once; the same
click again is a duplicate delivery, another click finds the approval decided; the card is updated with
the outcome and who decided; the console's channel pages show the outbox and the deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from approvals.models import ApprovalRequest
from controlplane.channels.services.connections import channel_connect
from controlplane.channels.services.outbox import channel_outbox_sweep
from controlplane.ledger.models import LedgerEvent
from controlplane.runtime import services as runtime
from controlplane.runtime.models import Execution
from tests.browser import sign_in
from tests.console.flow import acme, agent, dev_policy, eager_tasks, prod_step_draft  # noqa: F401
from tests.envelope import without_meta
from tests.identity.factories import PrincipalFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dev_policy", "eager_tasks"),
]

expect = pytest.importorskip("playwright.sync_api").expect

SIGNING = "browser-signing-secret"


def slack_post(base: str, path: str, body: bytes, content_type: str) -> tuple[int, dict]:
    """What Slack does: POST the body signed with the app's signing secret."""
    timestamp = str(int(time.time()))
    digest = hmac.new(SIGNING.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(  # noqa: S310 (the live test server)
        base + path,
        data=body,
        method="POST",
        headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={digest}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, without_meta(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return error.code, without_meta(json.loads(error.read()))


def click(base: str, connection, value: str, *, user: str, trigger: str) -> tuple[int, dict]:
    payload = {
        "type": "block_actions",
        "trigger_id": trigger,
        "user": {"id": user},
        "container": {"type": "message", "channel_id": "C1", "message_ts": "1700000000.000100"},
        "actions": [{"action_id": "controlplane.approve", "value": value}],
        "state": {"values": {"reason": {"controlplane.reason": {"value": "change window open"}}}},
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    path = reverse("webhook-slack-interactivity", kwargs={"connection": connection.key})
    return slack_post(base, path, body, "application/x-www-form-urlencoded")


def test_a_linked_person_approves_from_slack_and_the_step_runs_once(
    page,
    live_server,
    acme,  # noqa: F811 (the fixture imported above)
    agent,  # noqa: F811
    stand_in,
    settings,
):
    settings.CONTROLPLANE_SLACK_API_URL = stand_in.base + "/api/"
    slack = channel_connect(
        tenant=acme,
        provider="slack",
        name="ops",
        secret_values={"signing_secret": SIGNING, "bot_token": "xoxb-browser"},
        actor="test",
        channel="C1",
    )
    PrincipalFactory(
        tenant=acme,
        name="alice",
        human=True,
        user__username="alice",
        capabilities=[
            "console.view",
            "channels.link",
            "channels.manage",
            "approvals.read",
            "approvals.decide",
        ],
    )

    # Alice links her Slack identity in the console; the code goes to Slack (on commit), not to the page.
    sign_in(page, "alice")
    page.get_by_role("link", name="Channels", exact=True).click()
    expect(page.locator("h1")).to_have_text("Identity links")
    page.select_option("select[name=connection]", slack.key)
    page.fill("input[name=external_id]", "U100")
    page.get_by_role("button", name="Send the code").click()
    expect(page.locator("#changed")).to_contain_text("A code was sent to U100 on acme/slack/ops")
    channel_outbox_sweep()
    dm = json.loads(stand_in.seen[-1]["body"])
    assert dm["channel"] == "U100"
    code = re.search(r"link (\d{8})", dm["text"])[1]
    assert code not in page.content()
    # She types it back in Slack: Slack delivers the message event.
    event = json.dumps(
        {
            "type": "event_callback",
            "event_id": "Ev-link",
            "event": {"type": "message", "user": "U100", "text": f"link {code}"},
        }
    ).encode()
    events = reverse("webhook-slack-events", kwargs={"connection": slack.key})
    assert slack_post(live_server.url, events, event, "application/json") == (
        200,
        {"ok": True, "action": "link", "linked": "acme/alice"},
    )
    page.reload()
    expect(page.locator("#mine")).to_contain_text("U100")

    # An agent's intent needs approval: the outbox posts the card to the channel (its task runs on
    # commit; the sweep would send it if the broker had lost it).
    intent = runtime.intent_submit(principal=agent, draft=prod_step_draft(), idempotency_key="chat-1")
    approval = ApprovalRequest.objects.get(status="pending")
    channel_outbox_sweep()
    assert stand_in.seen[-1]["path"] == "/api/chat.postMessage"
    card = json.loads(stand_in.seen[-1]["body"])
    value = card["blocks"][2]["elements"][0]["value"]
    assert value == f"{approval.id}:{approval.content_hash}"

    # Clicks: an unlinked identity decides nothing; Alice approves; the same delivery again is a
    # duplicate; another click finds the approval decided.
    status, answer = click(live_server.url, slack, value, user="U999", trigger="t-unlinked")
    assert (status, answer["code"]) == (200, "CHANNEL_IDENTITY_UNLINKED")
    status, answer = click(live_server.url, slack, value, user="U100", trigger="t-alice")
    assert (status, answer["status"]) == (200, "approved")
    status, answer = click(live_server.url, slack, value, user="U100", trigger="t-alice")
    assert (status, answer["code"]) == (409, "CHANNEL_DUPLICATE_DELIVERY")
    status, answer = click(live_server.url, slack, value, user="U100", trigger="t-again")
    assert answer["code"] == "APPROVAL_NOT_PENDING"

    # The step ran, once; the card says who approved.
    execution = Execution.objects.get(intent=intent)
    assert execution.status == "completed"
    completed = LedgerEvent.objects.filter(
        type="controlplane.execution.step.completed", subject=f"execution/{execution.pk}"
    )
    assert completed.count() == 1
    channel_outbox_sweep()
    updates = [json.loads(s["body"]) for s in stand_in.seen if s["path"] == "/api/chat.update"]
    assert updates[0]["text"].endswith("approved (approve by alice: change window open)")
    assert updates[-1]["text"].startswith("Already decided elsewhere:")

    # The console's channel pages: the outbox sent everything, the deliveries show the refusal.
    page.get_by_role("link", name="Connections").click()
    expect(page.locator("#connection-list")).to_contain_text("acme/slack/ops")
    # the code, the card, the unlinked clicker's ephemeral answer, the card's two updates
    expect(page.locator("#outbox tr[data-status=sent]")).to_have_count(len(stand_in.seen))
    assert len(stand_in.seen) == 5
    page.get_by_role("link", name="Deliveries and refusals").click()
    expect(page.locator("#accepted")).to_contain_text("CHANNEL_IDENTITY_UNLINKED")
    expect(page.locator("#accepted")).to_contain_text("link ********")
