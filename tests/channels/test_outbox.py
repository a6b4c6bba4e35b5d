"""The channels outbox against a real local HTTP server standing in for Slack, Meta and Twilio: approval
requests posted when they open, the card updated with the outcome and who decided (wherever they did),
a click on an approval decided elsewhere shown as such, retries with back-off, giving up, and never
sending a row twice."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlencode

import orjson
import pytest
from django.utils import timezone

from approvals.models import ApprovalStatus
from approvals.services import approval_decide
from controlplane.channels.models import ChannelMessage, OutboundStatus
from controlplane.channels.services.connections import channel_connect
from controlplane.channels.services.outbox import channel_message_send, channel_outbox_sweep
from controlplane.channels.tasks import channel_message_send_task
from controlplane.ledger.models import LedgerEvent
from tests.channels.chat import agent, approver, connect, open_request, person
from tests.channels.test_providers_slack import SECRET, click
from tests.console.flow import eager_tasks  # noqa: F401  (fixture)
from tests.identity.factories import TenantFactory

pytestmark = pytest.mark.django_db


def sent_body(seen: dict) -> dict:
    """What the client sent: slack-sdk posts JSON; Twilio a form."""
    if seen["body"].startswith(b"{"):
        return json.loads(seen["body"])
    return {k: v[0] for k, v in parse_qs(seen["body"].decode()).items()}


@pytest.fixture
def slack(settings, stand_in):
    settings.CONTROLPLANE_SLACK_API_URL = stand_in.base + "/api/"
    connection = connect("slack", {"signing_secret": SECRET, "bot_token": "xoxb-9"})
    connection.channel = "C1"
    connection.save(update_fields=["channel"])
    return connection


def card_click(approval, *, user: str, trigger: str, reason: str = "fine") -> bytes:
    payload = {
        "type": "block_actions",
        "trigger_id": trigger,
        "user": {"id": user},
        "container": {"type": "message", "channel_id": "C1", "message_ts": "1700000000.000100"},
        "actions": [{"action_id": "controlplane.approve", "value": f"{approval.id}:{approval.content_hash}"}],
        "state": {"values": {"reason": {"controlplane.reason": {"value": reason}}}},
    }
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def sent_events() -> list[dict]:
    return list(
        LedgerEvent.objects.filter(type="controlplane.channels.notification.sent")
        .order_by("seq")
        .values_list("data", flat=True)
    )


def test_an_approval_opening_is_posted_to_the_tenants_slack_channel_once(slack, stand_in):
    approval = open_request(agent(slack))
    (row,) = ChannelMessage.objects.all()
    assert (row.kind, row.to, row.status, row.approval_id) == (
        "approval.request",
        "C1",
        "pending",
        approval.id,
    )
    assert stand_in.seen == []  # nothing goes out inside the approval's transaction
    assert channel_outbox_sweep() == {"sent": 1, "failed": 0, "pending": 0}
    (seen,) = stand_in.seen
    assert seen["path"] == "/api/chat.postMessage" and seen["headers"]["Authorization"] == "Bearer xoxb-9"
    buttons = sent_body(seen)["blocks"][2]["elements"]
    assert [b["value"] for b in buttons] == [f"{approval.id}:{approval.content_hash}"] * 2
    row.refresh_from_db()
    assert (row.status, row.provider_message_id, row.provider_channel, row.attempts) == (
        "sent",
        "1700000000.000100",
        "C1",
        1,
    )
    (event,) = sent_events()
    assert event["approval"] == approval.id and event["message_id"] == "1700000000.000100"
    # Sending again (a task run twice, a second sweep) calls nobody and ledgers nothing.
    channel_message_send_task.apply(args=(row.pk,))
    assert channel_outbox_sweep() == {"sent": 0, "failed": 0, "pending": 0}
    assert len(stand_in.seen) == 1 and len(sent_events()) == 1
    # Opening the same request again is the same request: no second post.
    open_request(approval.requested_by)
    assert ChannelMessage.objects.count() == 1


def test_another_tenants_approval_is_never_posted_to_this_tenants_channel(slack, stand_in):
    other = TenantFactory(slug="globex")
    open_request(approver(other, "requester-b"))
    assert not ChannelMessage.objects.exists()
    channel_outbox_sweep()
    assert stand_in.seen == []


def test_connections_that_cannot_post_get_nothing(settings, stand_in):
    tenant = TenantFactory(slug="acme")
    channel_connect(  # no bot token
        tenant=tenant,
        provider="slack",
        name="a",
        secret_values={"signing_secret": "s"},
        actor="t",
        channel="C1",
    )
    channel_connect(  # no channel
        tenant=tenant,
        provider="slack",
        name="b",
        secret_values={"signing_secret": "s", "bot_token": "x"},
        actor="t",
    )
    github = channel_connect(
        tenant=tenant,
        provider="github",
        name="c",
        secret_values={"webhook_secret": "w"},
        actor="t",
        channel="x",
    )
    open_request(agent(github))
    assert not ChannelMessage.objects.exists()


def test_a_click_by_a_linked_person_decides_and_the_card_shows_the_outcome_and_who(client, slack, stand_in):
    person(slack, "alice", "U100")
    approval = open_request(agent(slack))
    channel_outbox_sweep()
    response = click(client, slack, card_click(approval, user="U100", trigger="t-1"))
    assert response.json()["status"] == "approved"
    assert len(stand_in.seen) == 1  # the answer went back before any call out
    update = ChannelMessage.objects.get(kind="approval.outcome")
    assert update.method == "update" and update.reply_to.kind == "approval.request"
    channel_outbox_sweep()
    seen = stand_in.seen[-1]
    assert seen["path"] == "/api/chat.update"
    body = sent_body(seen)
    assert (body["channel"], body["ts"]) == ("C1", "1700000000.000100")
    assert body["text"] == "restart checkout: approved (approve by alice: fine)"
    assert [b["type"] for b in body["blocks"]] == ["section"]  # the buttons are gone


def test_decided_in_the_console_the_card_is_updated_and_a_later_click_says_decided_elsewhere(
    client, slack, stand_in
):
    person(slack, "alice", "U100")
    bob = approver(slack.tenant, "bob")
    approval = open_request(agent(slack))
    channel_outbox_sweep()
    approval_decide(approval=approval, actor=bob, decision="reject", reason="not now", content_hash="a" * 64)
    channel_outbox_sweep()
    assert sent_body(stand_in.seen[-1])["text"] == "restart checkout: rejected (reject by bob: not now)"
    before = LedgerEvent.objects.filter(type="controlplane.approval.request.decided").count()
    answer = click(client, slack, card_click(approval, user="U100", trigger="t-late")).json()
    assert answer["code"] == "APPROVAL_NOT_PENDING"
    assert LedgerEvent.objects.filter(type="controlplane.approval.request.decided").count() == before
    channel_outbox_sweep()
    late = sent_body(stand_in.seen[-1])
    assert stand_in.seen[-1]["path"] == "/api/chat.update"
    assert late["text"] == "Already decided elsewhere: restart checkout: rejected (reject by bob: not now)"


def test_with_a_quorum_of_two_the_card_counts_and_keeps_its_buttons(client, slack, stand_in):
    person(slack, "alice", "U100")
    person(slack, "bob", "U200")
    approval = open_request(agent(slack), quorum=2)
    channel_outbox_sweep()
    click(client, slack, card_click(approval, user="U100", trigger="t-1"))
    channel_outbox_sweep()
    first = sent_body(stand_in.seen[-1])
    assert first["text"] == "restart checkout: 1 of 2 approvals (approve by alice: fine)"
    assert [b["type"] for b in first["blocks"]] == ["section", "input", "actions"]
    click(client, slack, card_click(approval, user="U200", trigger="t-2", reason="agreed"))
    channel_outbox_sweep()
    assert sent_body(stand_in.seen[-1])["text"] == (
        "restart checkout: approved (approve by alice: fine; approve by bob: agreed)"
    )
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED


def test_a_refused_click_is_told_to_the_clicker_alone_and_the_card_stays(client, slack, stand_in):
    approval = open_request(agent(slack))
    channel_outbox_sweep()
    answer = click(client, slack, card_click(approval, user="U999", trigger="t-x")).json()
    assert answer["code"] == "CHANNEL_IDENTITY_UNLINKED"
    channel_outbox_sweep()
    seen = stand_in.seen[-1]
    assert seen["path"] == "/api/chat.postEphemeral"
    body = sent_body(seen)
    assert body["user"] == "U999" and body["text"] == "Your click changed nothing: CHANNEL_IDENTITY_UNLINKED"
    assert not ChannelMessage.objects.filter(kind="approval.outcome").exists()


def test_a_provider_down_is_retried_with_back_off_and_sent_once(slack, stand_in, settings):
    settings.CONTROLPLANE_CHANNEL_OUTBOX_BACKOFF_SECONDS = 5
    open_request(agent(slack))
    row = ChannelMessage.objects.get()
    stand_in.fail_next = 2
    now = timezone.now()
    assert channel_outbox_sweep(now=now) == {"sent": 0, "failed": 0, "pending": 1}
    row.refresh_from_db()
    assert (row.attempts, row.last_code, row.next_attempt_at) == (
        1,
        "CHANNEL_OUTBOUND_FAILED",
        now + timedelta(seconds=5),
    )
    assert channel_outbox_sweep(now=now + timedelta(seconds=4)) == {"sent": 0, "failed": 0, "pending": 0}
    channel_outbox_sweep(now=now + timedelta(seconds=5))
    row.refresh_from_db()
    assert (row.attempts, row.next_attempt_at) == (2, now + timedelta(seconds=15))  # doubled
    channel_outbox_sweep(now=now + timedelta(seconds=15))
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_code) == ("sent", 3, "")
    assert len(stand_in.seen) == 3 and len(sent_events()) == 1
    assert not LedgerEvent.objects.filter(type="controlplane.channels.notification.failed").exists()


def test_after_the_last_attempt_the_message_is_given_up_and_ledgered(slack, stand_in, settings):
    settings.CONTROLPLANE_CHANNEL_OUTBOX_MAX_ATTEMPTS = 2
    open_request(agent(slack))
    row = ChannelMessage.objects.get()
    stand_in.fail_next = 5
    now = timezone.now()
    channel_outbox_sweep(now=now)
    channel_outbox_sweep(now=now + timedelta(minutes=10))
    row.refresh_from_db()
    assert (row.status, row.attempts) == (OutboundStatus.FAILED, 2)
    failed = LedgerEvent.objects.get(type="controlplane.channels.notification.failed")
    assert failed.reason_codes == ["CHANNEL_OUTBOUND_FAILED"] and failed.data["attempts"] == 2
    assert "xoxb-9" not in failed.canonical  # no secret on the chain
    channel_outbox_sweep(now=now + timedelta(hours=1))
    assert len(stand_in.seen) == 2


def test_a_connection_that_lost_its_token_gives_up_at_once(slack, stand_in):
    open_request(agent(slack))
    row = ChannelMessage.objects.get()
    from controlplane.channels.services.connections import channel_disconnect

    channel_disconnect(connection=slack, actor="test")
    message = channel_message_send(message_id=row.pk)
    assert (message.status, message.last_code) == ("failed", "CHANNEL_NOT_CONFIGURED")
    assert stand_in.seen == []


@pytest.mark.usefixtures("eager_tasks")
def test_the_send_runs_after_the_commit_on_its_task(slack, stand_in, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        open_request(agent(slack))
    assert stand_in.seen == []
    for callback in callbacks:
        callback()
    assert [s["path"] for s in stand_in.seen] == ["/api/chat.postMessage"]
    assert ChannelMessage.objects.get().status == "sent"


def test_whatsapp_through_meta_gets_reply_buttons_and_twilio_the_typed_grammar(settings, stand_in):
    settings.CONTROLPLANE_META_API_URL = stand_in.base + "/v21.0"
    settings.CONTROLPLANE_TWILIO_API_URL = stand_in.base
    tenant = TenantFactory(slug="acme")
    channel_connect(
        tenant=tenant,
        provider="meta",
        name="wa",
        secret_values={
            "app_secret": "a",
            "verify_token": "v",
            "access_token": "EAA1",
            "phone_number_id": "555",
        },
        actor="t",
        channel="16505551234",
    )
    channel_connect(
        tenant=tenant,
        provider="twilio",
        name="tw",
        secret_values={"account_sid": "AC1", "auth_token": "tok", "from": "whatsapp:+1415"},
        actor="t",
        channel="whatsapp:+1999",
    )
    approval = open_request(approver(tenant, "requester"))
    assert channel_outbox_sweep()["sent"] == 2
    meta = next(s for s in stand_in.seen if s["path"] == "/v21.0/555/messages")
    body = json.loads(meta["body"])
    assert body["to"] == "16505551234" and body["type"] == "interactive"
    ids = [b["reply"]["id"] for b in body["interactive"]["action"]["buttons"]]
    assert ids == [
        f"approve:{approval.id}:{approval.content_hash}",
        f"reject:{approval.id}:{approval.content_hash}",
    ]
    twilio = next(s for s in stand_in.seen if s["path"].endswith("/Messages.json"))
    form = sent_body(twilio)
    assert form["To"] == "whatsapp:+1999" and f"approve {approval.id[:12]}" in form["Body"]
