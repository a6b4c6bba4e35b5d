"""WhatsApp through Meta's Cloud API: one app's webhook for one connection.

GET is Meta's verification handshake: `hub.mode=subscribe`, `hub.verify_token` equal to the connection's
verify token, answered with `hub.challenge` as plain text. POST deliveries are verified as Meta
documents: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` keyed by the app secret, over
the bytes as received (Meta escapes non-ASCII as \\uXXXX: re-serialised JSON would not verify).
Deduplicated on the message id (`wamid...`), or a status's id and state. A text reply `approve <id>
<hash> <reason>` is decided as the sender's (WhatsApp number's) mapped principal.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.http import HttpRequest, HttpResponse

from controlplane.channels.models import ChannelProvider
from controlplane.channels.providers.base import (
    ChannelAdapter,
    hub_diagnose,
    hub_signature_check,
    json_object,
    text_of,
)
from controlplane.channels.services.messages import (
    ApprovalAction,
    approval_action_parse,
    channel_message_receive,
)
from controlplane.kernel.errors import ControlPlaneError


def _value(payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("object") != "whatsapp_business_account":
        raise ControlPlaneError("CHANNEL_MALFORMED", "not a whatsapp_business_account notification")
    try:
        value = payload["entry"][0]["changes"][0]["value"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ControlPlaneError("CHANNEL_MALFORMED", "no entry[0].changes[0].value") from exc
    if not isinstance(value, dict):
        raise ControlPlaneError("CHANNEL_MALFORMED", "the change's value is not an object")
    return value


def _first(value: dict[str, Any], key: str) -> dict[str, Any] | None:
    items = value.get(key)
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else None


class MetaWhatsAppWebhook(ChannelAdapter):
    """Meta's WhatsApp Cloud API webhook for one connection: GET answers the hub.challenge handshake,
    POST deliveries are verified with X-Hub-Signature-256 over the raw body and deduplicated on the
    message id."""

    name = "meta"
    path = "channels/meta/<str:connection>/"
    provider = ChannelProvider.META
    capability = ""
    handshakes = True

    def handshake(self, request: HttpRequest) -> HttpResponse:
        expected = self.secret(request, "verify_token")
        given = request.GET.get("hub.verify_token", "")
        if request.GET.get("hub.mode") != "subscribe" or not hmac.compare_digest(
            expected.encode(), given.encode()
        ):
            raise ControlPlaneError("CHANNEL_VERIFY_TOKEN_INVALID", "hub.verify_token does not match")
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")

    def verify(self, request: HttpRequest) -> None:
        hub_signature_check(
            header=request.headers.get("X-Hub-Signature-256"),
            secret=self.secret(request, "app_secret"),
            body=request.body,
        )

    def _value(self, request: HttpRequest) -> dict[str, Any]:
        cached = getattr(request, "_meta_value", None)
        if cached is None:
            cached = _value(json_object(request.body))
            request._meta_value = cached
        return cached

    def _raw_id(self, request: HttpRequest) -> str:
        value = self._value(request)
        message = _first(value, "messages")
        if message and text_of(message.get("id")):
            return message["id"]
        status = _first(value, "statuses")
        if status and text_of(status.get("id")):
            return f"status:{status['id']}:{text_of(status.get('status'))}"
        raise ControlPlaneError("CHANNEL_MALFORMED", "neither a message nor a status with an id")

    def diagnose(self, request: HttpRequest) -> str:
        return hub_diagnose(
            header=request.headers.get("X-Hub-Signature-256"),
            secret=self.secret(request, "app_secret"),
            body=request.body,
        )

    def delivery_id(self, request: HttpRequest) -> str | None:
        return self.scoped(request, self._raw_id(request))

    def accept(self, request: HttpRequest, principal: Any) -> dict[str, Any]:
        value = self._value(request)
        message = _first(value, "messages")
        connection = self.connection(request)
        if message is None:  # a delivery status (sent, delivered, read, failed)
            status = _first(value, "statuses") or {}
            return channel_message_receive(
                connection=connection,
                sender=text_of(status.get("recipient_id")),
                text=text_of(status.get("status")),
                delivery_id=self._raw_id(request),
                kind="meta.status",
            )
        text = text_of((message.get("text") or {}).get("body")) if message.get("type") == "text" else ""
        action = approval_action_parse(text)
        if message.get("type") == "interactive":
            action = button_action(message)
            text = f"{action.decision} {action.approval[:12]} (reply button)" if action else ""
        return channel_message_receive(
            connection=connection,
            sender=text_of(message.get("from")),
            text=text,
            delivery_id=message["id"],
            kind=f"meta.{text_of(message.get('type')) or 'message'}",
            action=action,
        )


def button_action(message: dict[str, Any]) -> ApprovalAction | None:
    """A click on an approval prompt's reply button (controlplane.channels.services.notifications): its id
    is `<decision>:<approval id>:<content hash>`. A button carries no typed reason, so the reason recorded
    says how the person decided; the content hash binds the click to what the prompt showed."""
    interactive = message.get("interactive") if isinstance(message.get("interactive"), dict) else {}
    reply = interactive.get("button_reply") if interactive.get("type") == "button_reply" else None
    if not isinstance(reply, dict):
        return None
    decision, _, rest = text_of(reply.get("id")).partition(":")
    approval, _, content_hash = rest.partition(":")
    if decision not in {"approve", "reject"} or not approval or not content_hash:
        return None
    return ApprovalAction(
        decision=decision,
        approval=approval.lower(),
        content_hash=content_hash.lower(),
        reason=f"{decision}d with WhatsApp's reply button",
    )


META = MetaWhatsAppWebhook()
