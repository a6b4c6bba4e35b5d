"""What the control plane tells chat on its own: approval requests posted when they open, the posted card
updated as decisions come in, and a click on an approval decided elsewhere answered as such.

`approval_observed` is registered with `approvals.registry.register_observer` (the approvals app knows
nothing of channels) and runs inside the approval's transaction: it only writes outbox rows
(controlplane.channels.services.outbox), sent after the commit. A tenant's approvals go to each of its
connections that can post (Slack, Meta, Twilio) and has a channel set (`--channel`); never to another
tenant's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from controlplane.channels.models import (
    ChannelConnection,
    ChannelMessage,
    ChannelProvider,
    OutboundMethod,
    OutboundStatus,
)
from controlplane.channels.services.codes import approval_code_issue
from controlplane.channels.services.outbound import (
    OUTBOUND_SECRETS,
    approval_outcome_text,
    approval_text,
    parse_key,
    require_secrets,
    slack_approval_blocks,
    text_blocks,
)
from controlplane.channels.services.outbox import channel_message_enqueue, channel_message_send
from controlplane.kernel.errors import ControlPlaneError

if TYPE_CHECKING:
    from approvals.models import ApprovalRequest

APPROVAL_REQUEST = "approval.request"
APPROVAL_OUTCOME = "approval.outcome"
APPROVAL_REFUSAL = "approval.refusal"
CHAT_PROVIDERS = (ChannelProvider.SLACK, ChannelProvider.META, ChannelProvider.TWILIO)
_FINAL = {"approved", "rejected", "expired", "cancelled"}


def notifying_connections(*, tenant_id: int) -> list[ChannelConnection]:
    """The tenant's connections that post notifications: connected, a chat provider, a channel set, and
    the secrets their provider's API needs."""
    connections = ChannelConnection.objects.select_related("tenant", "principal").filter(
        tenant_id=tenant_id, disconnected_at__isnull=True, provider__in=CHAT_PROVIDERS
    )
    return [
        c for c in connections.exclude(channel="") if set(OUTBOUND_SECRETS[c.provider]) <= set(c.secret_names)
    ]


def approval_request_message(
    *, connection: ChannelConnection, approval: ApprovalRequest, to: str = ""
) -> ChannelMessage:
    """The outbox row posting `approval` to the connection's channel (or `to`), made once per place."""
    if approval.tenant_id != connection.tenant_id:
        raise ControlPlaneError("NOT_FOUND", "no such approval request in the connection's tenant")
    if connection.provider not in CHAT_PROVIDERS:
        raise ControlPlaneError("VALIDATION_FAILED", f"{connection.provider} has no outbound notifications")
    to = to or connection.channel
    if not to:
        raise ControlPlaneError("VALIDATION_FAILED", "no channel to post to: set the connection's channel")
    payload: dict[str, object] = {"text": approval_text(approval)}
    if connection.provider == ChannelProvider.SLACK:
        payload["blocks"] = slack_approval_blocks(approval)
    else:  # WhatsApp: a single-use reply code too (bound to the content hash); the row is scrubbed once sent
        code = approval_code_issue(
            connection=connection, approval_id=approval.id, content_hash=approval.content_hash
        )
        if code is not None:
            payload["text"] = f"{payload['text']}\nOr reply: APPROVE {code}  /  REJECT {code} <reason>"
            payload["scrub"] = True
        if connection.provider == ChannelProvider.META:
            payload["interactive"] = meta_approval_buttons(approval, str(payload["text"]))
    return channel_message_enqueue(
        connection=connection,
        key=f"{APPROVAL_REQUEST}:{connection.pk}:{approval.id}:{parse_key(to)}",
        kind=APPROVAL_REQUEST,
        to=to,
        payload=payload,
        approval_id=approval.id,
    )


def meta_approval_buttons(approval: ApprovalRequest, text: str) -> dict[str, object]:
    """WhatsApp reply buttons (Meta's `interactive` of type `button`): each id carries the decision, the
    approval id and its content hash, as the Slack buttons do; a click comes back as a `button_reply`."""
    return {
        "type": "button",
        "body": {"text": text[:1024]},
        "action": {
            "buttons": [
                {
                    "type": "reply",
                    "reply": {"id": f"{decision}:{approval.id}:{approval.content_hash}", "title": title},
                }
                for decision, title in (("approve", "Approve"), ("reject", "Reject"))
            ]
        },
    }


def _card_key(connection_id: int, channel: str, ts: str, approval: ApprovalRequest, count: int) -> str:
    place = f"{parse_key(channel)}:{parse_key(ts)}"
    return f"{APPROVAL_OUTCOME}:{connection_id}:{place}:{approval.status}:{count}"


def approval_observed(approval: ApprovalRequest, event: str) -> None:
    """The approvals observer: post a request when it opens; update every posted Slack card when a
    decision comes in or the request reaches a final state (whoever decided, wherever)."""
    if event == "opened":
        for connection in notifying_connections(tenant_id=approval.tenant_id):
            approval_request_message(connection=connection, approval=approval)
        return
    if event != "decided" and event not in _FINAL:
        return
    posted = ChannelMessage.objects.select_related("connection__tenant").filter(
        approval_id=approval.id,
        kind=APPROVAL_REQUEST,
        tenant_id=approval.tenant_id,
        connection__provider=ChannelProvider.SLACK,
    )
    text = approval_outcome_text(approval)
    count = approval.decisions.count()
    for card in posted:
        # Keyed by the card's place when known (a click's own update has the same key: one update).
        place = card.provider_channel or card.to
        ts = card.provider_message_id or f"row{card.pk}"
        key = _card_key(card.connection_id, place, ts, approval, count)
        keep = approval.status == "pending"  # buttons stay while more decisions are needed
        channel_message_enqueue(
            connection=card.connection,
            key=key,
            kind=APPROVAL_OUTCOME,
            to=place,
            method=OutboundMethod.UPDATE,
            payload={
                "text": text,
                "blocks": text_blocks(text) + (card.payload.get("blocks", [])[1:] if keep else []),
            },
            approval_id=approval.id,
            reply_to=card,
        )


def slack_card_answer(
    *,
    connection: ChannelConnection,
    approval: ApprovalRequest | None,
    channel: str,
    ts: str,
    user: str,
    code: str | None,
    trigger: str,
) -> None:
    """After a click on a card: update the clicked card with the approval's state (the observer has made
    that row already when the click decided), or, for a refused click, say why — to the whole channel
    when the approval was decided elsewhere, to the clicker alone otherwise (the card stays usable)."""
    if approval is None or not channel or not ts:
        return
    if code is None or code in {"APPROVAL_NOT_PENDING", "APPROVAL_EXPIRED"}:
        text = approval_outcome_text(approval)
        key = _card_key(connection.pk, channel, ts, approval, approval.decisions.count())
        if code is not None:
            text, key = f"Already decided elsewhere: {text}", f"{key}:elsewhere"
        channel_message_enqueue(
            connection=connection,
            key=key,
            kind=APPROVAL_OUTCOME,
            to=channel,
            method=OutboundMethod.UPDATE,
            payload={"text": text, "blocks": text_blocks(text), "ts": ts},
            approval_id=approval.id,
        )
        return
    text = f"Your click changed nothing: {code}"
    channel_message_enqueue(
        connection=connection,
        key=f"{APPROVAL_REFUSAL}:{connection.pk}:{parse_key(trigger)}",
        kind=APPROVAL_REFUSAL,
        to=channel,
        method=OutboundMethod.EPHEMERAL,
        payload={"text": text, "user": user},
        approval_id=approval.id,
    )


def channel_approval_notify(
    *, connection: ChannelConnection, approval: ApprovalRequest, to: str = ""
) -> ChannelMessage:
    """Post `approval` now (`channels notify`): the outbox row, sent at once. Refused before anything is
    written: no outbound secrets (CHANNEL_NOT_CONFIGURED), another tenant's approval, no channel. A
    provider failure is CHANNEL_OUTBOUND_FAILED, and the row stays in the outbox to be retried."""
    if connection.provider in OUTBOUND_SECRETS:
        require_secrets(connection, *OUTBOUND_SECRETS[connection.provider])
    with transaction.atomic():
        message = approval_request_message(connection=connection, approval=approval, to=to)
    sent = channel_message_send(message_id=message.pk)
    if sent is None or sent.status != OutboundStatus.SENT:
        code = sent.last_code if sent is not None else "CHANNEL_OUTBOUND_FAILED"
        detail = sent.last_error if sent is not None else "the message is being sent elsewhere"
        raise ControlPlaneError(code or "CHANNEL_OUTBOUND_FAILED", f"{detail} (the outbox retries it)")
    return sent
