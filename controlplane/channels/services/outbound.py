"""The providers' APIs, called for one outbox row (controlplane.channels.services.outbox) at a time.

Through the providers' own clients (`slack_sdk.WebClient`, `twilio.rest.Client`; Meta's Graph API and
GitHub's REST API have no maintained client we need, so `requests`), pointed at
CONTROLPLANE_SLACK_API_URL / _TWILIO_API_URL / _META_API_URL / _GITHUB_API_URL so the tests run against
small local HTTP servers standing in for each provider. A provider refusing or unreachable is
CHANNEL_OUTBOUND_FAILED (retried); missing secrets are CHANNEL_NOT_CONFIGURED (not retried).

Also here: what a person reads in chat (approval texts and Slack blocks), with chat data escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from twilio.base.exceptions import TwilioException
from twilio.rest import Client as TwilioClient

from controlplane.channels.models import ChannelConnection, ChannelProvider, OutboundMethod
from controlplane.channels.services.connections import connection_secrets
from controlplane.kernel.errors import ControlPlaneError

if TYPE_CHECKING:
    from approvals.models import ApprovalRequest
    from controlplane.channels.models import ChannelMessage

TIMEOUT_SECONDS = 10
APPROVE_ACTION = "controlplane.approve"
REJECT_ACTION = "controlplane.reject"
REASON_ACTION = "controlplane.reason"


@dataclass(frozen=True)
class Sent:
    """What the provider answered: its id of the message, and the channel it landed in (Slack)."""

    message_id: str
    channel: str = ""


def slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters escaped (its documented `&`, `<`, `>`): chat data is untrusted."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def approval_text(approval: ApprovalRequest) -> str:
    """What a person reads, and how to answer, in any channel (the grammar of docs/channels.md)."""
    what = approval.summary.get("what") or approval.summary.get("title") or approval.subject_kind
    return (
        f"Approval needed ({approval.risk_tier}, quorum {approval.quorum}): {what}\n"
        f"Reply: approve {approval.id[:12]} {approval.content_hash[:12]} <reason>  "
        f"(or reject ... <reason>)"
    )


def approval_outcome_text(approval: ApprovalRequest) -> str:
    """The approval's state and who decided what, as a card shows it once a decision is in."""
    decisions = list(approval.decisions.select_related("approver").order_by("decided_at", "id"))
    who = "; ".join(f"{d.decision} by {d.approver.name}: {d.reason}" for d in decisions)
    what = approval.summary.get("what") or approval.summary.get("title") or approval.subject_kind
    if approval.status == "pending":
        count = sum(1 for d in decisions if d.decision == "approve")
        return f"{what}: {count} of {approval.quorum} approvals ({who})"
    return f"{what}: {approval.status}" + (f" ({who})" if who else "")


def slack_approval_blocks(approval: ApprovalRequest) -> list[dict[str, Any]]:
    """The card: what is asked, a reason input, Approve and Reject buttons carrying id and content hash."""
    value = f"{approval.id}:{approval.content_hash}"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(approval_text(approval))}},
        {
            "type": "input",
            "block_id": "reason",
            "optional": False,
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {"type": "plain_text_input", "action_id": REASON_ACTION},
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "style": "primary",
                    "action_id": APPROVE_ACTION,
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": value,
                },
                {
                    "type": "button",
                    "style": "danger",
                    "action_id": REJECT_ACTION,
                    "text": {"type": "plain_text", "text": "Reject"},
                    "value": value,
                },
            ],
        },
    ]


def text_blocks(text: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(text)}}]


def require_secrets(connection: ChannelConnection, *names: str) -> list[str]:
    """The connection's secrets `names`; CHANNEL_NOT_CONFIGURED when one is unset or it is disconnected."""
    values = connection_secrets(connection=connection) if connection.disconnected_at is None else {}
    missing = [name for name in names if not values.get(name)]
    if missing or connection.disconnected_at is not None:
        raise ControlPlaneError(
            "CHANNEL_NOT_CONFIGURED", f"{connection.ref} lacks {', '.join(missing) or 'a connection'}"
        )
    return [values[name] for name in names]


OUTBOUND_SECRETS: dict[str, tuple[str, ...]] = {
    ChannelProvider.SLACK: ("bot_token",),
    ChannelProvider.TWILIO: ("account_sid", "auth_token", "from"),
    ChannelProvider.META: ("access_token", "phone_number_id"),
    ChannelProvider.GITHUB: ("token",),
}


def _slack(message: ChannelMessage) -> Sent:
    (token,) = require_secrets(message.connection, "bot_token")
    client = WebClient(token=token, base_url=settings.CONTROLPLANE_SLACK_API_URL, timeout=TIMEOUT_SECONDS)
    payload = message.payload
    try:
        if message.method == OutboundMethod.UPDATE:
            parent = message.reply_to
            channel = (parent.provider_channel or parent.to) if parent else message.to
            ts = parent.provider_message_id if parent else payload["ts"]
            answer = client.chat_update(
                channel=channel, ts=ts, text=payload["text"], blocks=payload.get("blocks")
            )
            return Sent(message_id=ts, channel=channel)
        if message.method == OutboundMethod.EPHEMERAL:
            answer = client.chat_postEphemeral(channel=message.to, user=payload["user"], text=payload["text"])
            return Sent(message_id=str(answer.get("message_ts", "")), channel=message.to)
        answer = client.chat_postMessage(
            channel=message.to, text=payload["text"], blocks=payload.get("blocks")
        )
    except (SlackApiError, OSError) as exc:
        raise ControlPlaneError("CHANNEL_OUTBOUND_FAILED", f"Slack {message.method} failed: {exc}") from exc
    return Sent(message_id=str(answer.get("ts", "")), channel=str(answer.get("channel", "")))


def _twilio(message: ChannelMessage) -> Sent:
    sid, token, sender = require_secrets(message.connection, "account_sid", "auth_token", "from")
    client = TwilioClient(sid, token)
    client.api.base_url = settings.CONTROLPLANE_TWILIO_API_URL.rstrip("/")
    try:
        sent = client.messages.create(to=message.to, from_=sender, body=message.payload["text"])
    except (TwilioException, OSError) as exc:
        raise ControlPlaneError("CHANNEL_OUTBOUND_FAILED", f"Twilio Messages failed: {exc}") from exc
    return Sent(message_id=str(sent.sid))


def _meta(message: ChannelMessage) -> Sent:
    token, phone = require_secrets(message.connection, "access_token", "phone_number_id")
    endpoint = f"{settings.CONTROLPLANE_META_API_URL.rstrip('/')}/{phone}/messages"
    interactive = message.payload.get("interactive")
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": message.to}
    if interactive:
        body.update(type="interactive", interactive=interactive)
    else:
        body.update(type="text", text={"body": message.payload["text"]})
    return Sent(message_id=_graph_post(endpoint, token, body, "Meta Graph API")["messages"][0]["id"])


def _graph_post(endpoint: str, token: str, body: dict[str, Any], what: str) -> Any:
    try:
        answer = requests.post(
            endpoint, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_SECONDS
        )
        answer.raise_for_status()
        return answer.json() if answer.content else {}
    except (requests.RequestException, ValueError) as exc:
        raise ControlPlaneError("CHANNEL_OUTBOUND_FAILED", f"{what} failed: {exc}") from exc


def _github(message: ChannelMessage) -> Sent:
    (token,) = require_secrets(message.connection, "token")
    endpoint = settings.CONTROLPLANE_GITHUB_API_URL.rstrip("/") + message.payload["path"]
    try:
        answer = requests.post(
            endpoint,
            json=message.payload["body"],
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            timeout=TIMEOUT_SECONDS,
        )
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise ControlPlaneError("CHANNEL_OUTBOUND_FAILED", f"GitHub review failed: {exc}") from exc
    return Sent(message_id=str(answer.status_code))


_SENDERS = {
    ChannelProvider.SLACK: _slack,
    ChannelProvider.TWILIO: _twilio,
    ChannelProvider.META: _meta,
    ChannelProvider.GITHUB: _github,
}


def provider_send(message: ChannelMessage) -> Sent:
    """Make the one call `message` stands for; raises CHANNEL_OUTBOUND_FAILED or CHANNEL_NOT_CONFIGURED."""
    return _SENDERS[message.connection.provider](message)


def parse_key(text: str) -> str:
    """Ids that go into outbox keys are bounded (a Slack ts, a channel id): keep them short and plain."""
    return "".join(ch for ch in text if ch.isalnum() or ch in ".:-_+")[:60]
