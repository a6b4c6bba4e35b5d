"""Acting from chat beyond approval cards: incident notifications (opened, escalated, resolved) posted
to the tenant's channel by the ledger relay; `/cp incident ID` and `/cp ack ID` as the linked person
(`incident acknowledge`, with the console's capability); WhatsApp reply buttons deciding an approval once,
bound to its content hash."""

from __future__ import annotations

import json
import re

import pytest

from approvals.models import ApprovalStatus
from controlplane.channels.models import ChannelCursor, ChannelMessage
from controlplane.channels.services.incidents import incident_notifications_relay
from controlplane.channels.services.outbox import channel_outbox_sweep
from controlplane.channels.tasks import channel_outbox_sweep_task
from controlplane.identity.services import grant_add
from controlplane.ledger.models import LedgerEvent
from incidents.services import incident_raise_severity, incident_resolve
from tests.channels.chat import agent, connect, open_request, person, url
from tests.channels.test_outbox import sent_body
from tests.channels.test_providers_meta import APP_SECRET, SENDER, VERIFY_TOKEN, sign
from tests.channels.test_providers_slack import SECRET, command
from tests.channels.test_providers_twilio import AUTH_TOKEN as TWILIO_TOKEN
from tests.channels.test_providers_twilio import PUBLIC as TWILIO_PUBLIC
from tests.channels.test_providers_twilio import SENDER as TWILIO_SENDER
from tests.channels.test_providers_twilio import deliver as twilio_deliver
from tests.channels.test_providers_twilio import form as twilio_form
from tests.identity.factories import TenantFactory
from tests.incidents.factories import make_rule, open_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def slack(settings, stand_in):
    settings.CONTROLPLANE_SLACK_API_URL = stand_in.base + "/api/"
    connection = connect("slack", {"signing_secret": SECRET, "bot_token": "xoxb-9"})
    connection.channel = "C1"
    connection.save(update_fields=["channel"])
    return connection


def oncall(connection, name="alice", user="U100", capabilities=("incidents.read", "incidents.manage")):
    principal = person(connection, name, user)
    for capability in capabilities:
        grant_add(principal=principal, capability=capability, actor="test")
    return principal


def test_incidents_opened_escalated_and_resolved_are_posted_once_each(slack, stand_in):
    assert incident_notifications_relay() == 0  # first run: the cursor starts at the head
    make_rule(slack.tenant)
    incident = open_incident(slack.tenant)
    alice = oncall(slack)
    incident_raise_severity(incident=incident, actor=alice, severity="critical", reason="customers see it")
    incident_resolve(incident=incident, actor=alice, reason="rolled back")
    assert incident_notifications_relay() == 3
    assert incident_notifications_relay() == 0  # the cursor moved: nothing twice
    kinds = list(ChannelMessage.objects.order_by("id").values_list("kind", flat=True))
    assert kinds == ["incident.opened", "incident.escalated", "incident.resolved"]
    channel_outbox_sweep()
    texts = [sent_body(s)["text"] for s in stand_in.seen]
    short = incident.pk[:12]
    head = f"checkout-errors: checkout (checkout, critical) {short}"
    assert texts[0] == f"Incident opened: {head}\nAcknowledge: /cp ack {short}"
    assert texts[1].startswith(f"Incident escalated: checkout-errors: checkout (checkout, critical) {short}")
    assert texts[2] == f"Incident resolved: checkout-errors: checkout (checkout, critical) {short}"


def test_the_beat_task_relays_and_sends_and_other_tenants_hear_nothing(slack, stand_in):
    other = connect("slack", {"signing_secret": SECRET, "bot_token": "xoxb-other"}, tenant_slug="globex")
    other.channel = "C-GLOBEX"
    other.save(update_fields=["channel"])
    channel_outbox_sweep_task.apply()
    make_rule(slack.tenant)
    open_incident(slack.tenant)
    result = channel_outbox_sweep_task.apply().get()
    assert result["incident_events"] == 1 and result["sent"] == 1
    assert [sent_body(s)["channel"] for s in stand_in.seen] == ["C1"]
    opened = LedgerEvent.objects.get(type="controlplane.incident.opened")
    assert ChannelCursor.objects.get().seq >= opened.seq


def test_slash_incident_shows_it_and_ack_acknowledges_as_the_linked_person(client, slack):
    make_rule(slack.tenant)
    incident = open_incident(slack.tenant)
    oncall(slack)
    shown = command(client, slack, f"incident {incident.pk[:10]}", trigger="c-1").json()
    assert shown["ok"] and shown["text"].startswith(f"{incident.pk[:12]} open high checkout")
    acked = command(client, slack, f"ack {incident.pk[:10]}", trigger="c-2").json()
    assert acked["ok"] and acked["status"] == "acknowledged"
    incident.refresh_from_db()
    assert incident.status == "acknowledged"
    event = LedgerEvent.objects.get(type="controlplane.incident.acknowledged")
    assert event.actor == "acme/alice"
    again = command(client, slack, f"ack {incident.pk[:10]}", trigger="c-3").json()
    assert again["code"] == "INCIDENT_TRANSITION_NOT_ALLOWED"


def test_ack_needs_a_link_and_the_capability_and_another_tenants_incident_is_not_found(client, slack):
    make_rule(slack.tenant)
    incident = open_incident(slack.tenant)
    before = LedgerEvent.objects.filter(type="controlplane.incident.acknowledged").count()
    assert command(client, slack, f"ack {incident.pk[:10]}", user="U999").json()["code"] == (
        "CHANNEL_IDENTITY_UNLINKED"
    )
    oncall(slack, "vic", "U300", capabilities=("incidents.read",))
    assert command(client, slack, f"ack {incident.pk[:10]}", user="U300", trigger="c-v").json()["code"] == (
        "CAPABILITY_MISSING"
    )
    globex = TenantFactory(slug="globex")
    make_rule(globex, match_service="payments")
    theirs = open_incident(globex, service="payments")
    oncall(slack)
    answer = command(client, slack, f"ack {theirs.pk[:10]}", trigger="c-g").json()
    assert answer["code"] == "INCIDENT_NOT_FOUND"
    assert LedgerEvent.objects.filter(type="controlplane.incident.acknowledged").count() == before
    theirs.refresh_from_db()
    assert theirs.status == "open"


def button_click(approval, *, decision="approve", message_id="wamid.BTN1", content_hash=None) -> bytes:
    content_hash = content_hash or approval.content_hash
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
                            "messages": [
                                {
                                    "from": SENDER,
                                    "id": message_id,
                                    "timestamp": "1700000000",
                                    "type": "interactive",
                                    "interactive": {
                                        "type": "button_reply",
                                        "button_reply": {
                                            "id": f"{decision}:{approval.id}:{content_hash}",
                                            "title": decision.title(),
                                        },
                                    },
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


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


def press(client, connection, body):
    return client.post(
        url("meta", connection),
        data=body,
        content_type="application/json",
        headers={"X-Hub-Signature-256": sign(body)},
    )


def test_a_whatsapp_reply_button_approves_once_and_never_again(client, meta):
    person(meta, "alice", SENDER)
    approval = open_request(agent(meta))
    answer = press(client, meta, button_click(approval)).json()
    assert answer["status"] == "approved"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.decisions.get().reason == "approved with WhatsApp's reply button"
    again = press(client, meta, button_click(approval, message_id="wamid.BTN2")).json()
    assert again["code"] == "APPROVAL_NOT_PENDING" and approval.decisions.count() == 1
    replay = press(client, meta, button_click(approval))
    assert replay.json()["code"] == "CHANNEL_DUPLICATE_DELIVERY"


def test_a_reply_button_for_other_content_or_from_an_unlinked_number_decides_nothing(client, meta):
    approval = open_request(agent(meta))
    assert press(client, meta, button_click(approval)).json()["code"] == "CHANNEL_IDENTITY_UNLINKED"
    person(meta, "alice", SENDER)
    changed = press(client, meta, button_click(approval, message_id="wamid.B3", content_hash="b" * 64)).json()
    assert changed["code"] == "APPROVAL_CONTENT_CHANGED"
    assert approval.decisions.count() == 0


@pytest.fixture
def twilio(settings, stand_in):
    settings.CONTROLPLANE_TWILIO_API_URL = stand_in.base
    settings.CONTROLPLANE_PUBLIC_URL = TWILIO_PUBLIC
    connection = connect(
        "twilio", {"auth_token": TWILIO_TOKEN, "account_sid": "AC1", "from": "whatsapp:+1415"}
    )
    connection.channel = TWILIO_SENDER
    connection.save(update_fields=["channel"])
    return connection


def prompt_code(stand_in) -> str:
    body = sent_body(next(s for s in stand_in.seen if s["path"].endswith("/Messages.json")))["Body"]
    return re.search(r"APPROVE ([A-Z0-9]{6})", body)[1]


def test_a_whatsapp_reply_code_approves_once_and_never_again(client, twilio, stand_in):
    person(twilio, "alice", TWILIO_SENDER)
    approval = open_request(agent(twilio))
    channel_outbox_sweep()
    code = prompt_code(stand_in)
    row = ChannelMessage.objects.get(kind="approval.request")
    assert row.status == "sent" and row.payload == {"scrubbed": True}  # the code is not kept in the outbox
    wrong = twilio_deliver(client, twilio, twilio_form(f"APPROVE {'X' * 6}", sid="SM-w"))
    assert wrong["X-Controlplane-Outcome"] == "CHANNEL_APPROVAL_CODE_INVALID"
    no_reason = twilio_deliver(client, twilio, twilio_form(f"REJECT {code}", sid="SM-r"))
    assert no_reason["X-Controlplane-Outcome"] == "APPROVAL_REASON_REQUIRED"
    ok = twilio_deliver(client, twilio, twilio_form(f"approve {code.lower()}", sid="SM-1"))
    assert ok["X-Controlplane-Outcome"] == "ok"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.decisions.get().reason == "approved with a WhatsApp reply code"
    again = twilio_deliver(client, twilio, twilio_form(f"APPROVE {code}", sid="SM-2"))
    assert again["X-Controlplane-Outcome"] == "CHANNEL_APPROVAL_CODE_USED"
    assert approval.decisions.count() == 1
    assert not LedgerEvent.objects.filter(canonical__contains=code).exists()


def test_a_reply_code_is_bound_to_its_connection_and_needs_a_linked_number(client, twilio, stand_in):
    approval = open_request(agent(twilio))
    channel_outbox_sweep()
    code = prompt_code(stand_in)
    unlinked = twilio_deliver(client, twilio, twilio_form(f"APPROVE {code}", sid="SM-u"))
    assert unlinked["X-Controlplane-Outcome"] == "CHANNEL_IDENTITY_UNLINKED"
    person(twilio, "alice", TWILIO_SENDER)
    reject = twilio_deliver(client, twilio, twilio_form(f"REJECT {code} not in this window", sid="SM-x"))
    assert reject["X-Controlplane-Outcome"] == "ok"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED
    assert approval.decisions.get().reason == "not in this window"
