"""Outbound notifications: an approval card posted to Slack, an approval prompt sent over WhatsApp.

Through the providers' own clients (`slack_sdk.WebClient`, `twilio.rest.Client`; Meta's Graph API has no
maintained Python client, so `requests`), pointed at CONTROLPLANE_SLACK_API_URL / _TWILIO_API_URL /
_META_API_URL so the tests run against a small local HTTP server standing in for each provider. Each
send is ledgered (`controlplane.channels.notification.sent`, with the provider's message id); a provider
refusing or unreachable is CHANNEL_OUTBOUND_FAILED and ledgers nothing.
"""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from twilio.base.exceptions import TwilioException
from twilio.rest import Client as TwilioClient

from approvals.models import ApprovalRequest
from controlplane.channels.models import ChannelConnection, ChannelProvider
from controlplane.channels.providers.slack import APPROVE_ACTION, REASON_ACTION, REJECT_ACTION
from controlplane.channels.services.connections import connection_secrets
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append

TIMEOUT_SECONDS = 10


def approval_text(approval: ApprovalRequest) -> str:
    """What a person reads, and how to answer, in any channel (the grammar of docs/channels.md)."""
    what = approval.summary.get("what") or approval.summary.get("title") or approval.subject_kind
    return (
        f"Approval needed ({approval.risk_tier}, quorum {approval.quorum}): {what}\n"
        f"Reply: approve {approval.id[:12]} {approval.content_hash[:12]} <reason>  "
        f"(or reject ... <reason>)"
    )


def slack_approval_blocks(approval: ApprovalRequest) -> list[dict[str, Any]]:
    """The card: what is asked, a reason input, Approve and Reject buttons carrying id and content hash."""
    value = f"{approval.id}:{approval.content_hash}"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": approval_text(approval)}},
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


def _require(values: dict[str, str], connection: ChannelConnection, *names: str) -> list[str]:
    missing = [name for name in names if not values.get(name)]
    if missing or connection.disconnected_at is not None:
        raise ControlPlaneError(
            "CHANNEL_NOT_CONFIGURED", f"{connection.ref} lacks {', '.join(missing) or 'a connection'}"
        )
    return [values[name] for name in names]


def _send_slack(connection: ChannelConnection, approval: ApprovalRequest, to: str) -> str:
    (token,) = _require(connection_secrets(connection=connection), connection, "bot_token")
    client = WebClient(token=token, base_url=settings.CONTROLPLANE_SLACK_API_URL, timeout=TIMEOUT_SECONDS)
    try:
        answer = client.chat_postMessage(
            channel=to, text=approval_text(approval), blocks=slack_approval_blocks(approval)
        )
    except (SlackApiError, OSError) as exc:
        raise ControlPlaneError("CHANNEL_OUTBOUND_FAILED", f"Slack chat.postMessage failed: {exc}") from exc
    return str(answer.get("ts", ""))


def _send_twilio(connection: ChannelConnection, approval: ApprovalRequest, to: str) -> str:
    values = connection_secrets(connection=connection)
    sid, token, sender = _require(values, connection, "account_sid", "auth_token", "from")
    client = TwilioClient(sid, token)
    client.api.base_url = settings.CONTROLPLANE_TWILIO_API_URL.rstrip("/")
    try:
        message = client.messages.create(to=to, from_=sender, body=approval_text(approval))
    except (TwilioException, OSError) as exc:
        raise ControlPlaneError("CHANNEL_OUTBOUND_FAILED", f"Twilio Messages failed: {exc}") from exc
    return str(message.sid)


def _send_meta(connection: ChannelConnection, approval: ApprovalRequest, to: str) -> str:
    values = connection_secrets(connection=connection)
    token, phone = _require(values, connection, "access_token", "phone_number_id")
    endpoint = f"{settings.CONTROLPLANE_META_API_URL.rstrip('/')}/{phone}/messages"
    body = {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "text",
        "text": {"body": approval_text(approval)},
    }
    try:
        answer = requests.post(
            endpoint, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_SECONDS
        )
        answer.raise_for_status()
        return str(answer.json()["messages"][0]["id"])
    except (requests.RequestException, ValueError, KeyError, IndexError) as exc:
        raise ControlPlaneError("CHANNEL_OUTBOUND_FAILED", f"Meta Graph API failed: {exc}") from exc


_SENDERS = {
    ChannelProvider.SLACK: _send_slack,
    ChannelProvider.TWILIO: _send_twilio,
    ChannelProvider.META: _send_meta,
}


def channel_approval_notify(
    *, connection: ChannelConnection, approval: ApprovalRequest, actor: str, to: str = ""
) -> str:
    """Post `approval` to the connection's channel (or `to`: a Slack channel id, a WhatsApp number) and
    ledger it; returns the provider's message id. Refused: another tenant's approval (NOT_FOUND), a
    provider with no outbound (VALIDATION_FAILED), missing secrets (CHANNEL_NOT_CONFIGURED), a provider
    failure (CHANNEL_OUTBOUND_FAILED)."""
    if approval.tenant_id != connection.tenant_id:
        raise ControlPlaneError("NOT_FOUND", "no such approval request in the connection's tenant")
    sender = _SENDERS.get(connection.provider)
    if sender is None:
        raise ControlPlaneError("VALIDATION_FAILED", f"{connection.provider} has no outbound notifications")
    to = to or connection.channel
    if not to:
        raise ControlPlaneError("VALIDATION_FAILED", "no channel to post to: set the connection's channel")
    message_id = sender(connection, approval, to)
    ledger_append(
        type="controlplane.channels.notification.sent",
        subject=f"channel/{connection.ref}",
        data={
            "provider": connection.provider,
            "connection": connection.ref,
            "to": to,
            "approval": approval.id,
            "content_hash": approval.content_hash,
            "message_id": message_id,
        },
        tenant=connection.tenant.slug,
        actor=actor,
    )
    return message_id


def slack_card_update(*, connection: ChannelConnection, channel: str, ts: str, text: str, actor: str) -> None:
    """Replace a posted approval card (`chat.update`) with its outcome: who decided, or the refusal.
    Safe to run twice (the same text again); ledgered as `controlplane.channels.notification.updated`."""
    (token,) = _require(connection_secrets(connection=connection), connection, "bot_token")
    client = WebClient(token=token, base_url=settings.CONTROLPLANE_SLACK_API_URL, timeout=TIMEOUT_SECONDS)
    try:
        client.chat_update(
            channel=channel,
            ts=ts,
            text=text,
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        )
    except (SlackApiError, OSError) as exc:
        raise ControlPlaneError("CHANNEL_OUTBOUND_FAILED", f"Slack chat.update failed: {exc}") from exc
    ledger_append(
        type="controlplane.channels.notification.updated",
        subject=f"channel/{connection.ref}",
        data={"provider": connection.provider, "connection": connection.ref, "to": channel, "message_id": ts},
        tenant=connection.tenant.slug,
        actor=actor,
    )
