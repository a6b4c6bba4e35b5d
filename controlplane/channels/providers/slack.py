"""Slack: the Events API, interactivity (Approve / Reject buttons) and slash commands of one Slack app.

Verified as Slack publishes it: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{raw body}">`
keyed by the app's signing secret, `X-Slack-Request-Timestamp` within CONTROLPLANE_SLACK_TOLERANCE_SECONDS
(300) of now. Deduplicated on Slack's ids: an event's `event_id` (Slack's retries, marked
`X-Slack-Retry-Num`, carry the same one), an interaction's or command's `trigger_id`. Slack wants an
answer within 3 s: the work done in the request is one decision and one append; everything outbound
(the card's update) runs after the commit.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qs

import orjson
from django.conf import settings
from django.http import HttpRequest

from approvals.models import ApprovalRequest
from controlplane.channels.models import ChannelProvider
from controlplane.channels.providers.base import (
    ChannelAdapter,
    body_variants,
    json_object,
    mismatch,
    text_of,
)
from controlplane.channels.services.commands import channel_command_run
from controlplane.channels.services.messages import (
    ApprovalAction,
    approval_action_parse,
    channel_message_receive,
)
from controlplane.channels.services.notifications import slack_card_answer
from controlplane.channels.services.outbound import (
    APPROVE_ACTION,
    REASON_ACTION,
    REJECT_ACTION,
    slack_escape,
)
from controlplane.kernel.errors import ControlPlaneError


def slack_signature_check(
    *, secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None
) -> None:
    """Slack's v0 request signature. Refused: no headers (CHANNEL_SIGNATURE_MISSING), a timestamp more
    than the tolerance from `now` either way (CHANNEL_STALE_TIMESTAMP), a wrong HMAC (..._INVALID)."""
    if not timestamp or not signature:
        raise ControlPlaneError(
            "CHANNEL_SIGNATURE_MISSING", "X-Slack-Signature and X-Slack-Request-Timestamp are required"
        )
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise ControlPlaneError("CHANNEL_STALE_TIMESTAMP", "X-Slack-Request-Timestamp is not unix seconds")
    now = time.time() if now is None else now
    tolerance = settings.CONTROLPLANE_SLACK_TOLERANCE_SECONDS
    if abs(now - int(timestamp)) > tolerance:
        raise ControlPlaneError(
            "CHANNEL_STALE_TIMESTAMP", f"the request timestamp is more than {tolerance}s from now"
        )
    basestring = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip()):
        raise ControlPlaneError("CHANNEL_SIGNATURE_INVALID", "X-Slack-Signature does not verify")


def _form(body: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise ControlPlaneError("CHANNEL_MALFORMED", "the form body is not UTF-8") from exc
    return {key: values[0] for key, values in parsed.items()}


class _Slack(ChannelAdapter):
    provider = ChannelProvider.SLACK
    capability = ""

    def verify(self, request: HttpRequest) -> None:
        slack_signature_check(
            secret=self.secret(request, "signing_secret"),
            timestamp=request.headers.get("X-Slack-Request-Timestamp"),
            signature=request.headers.get("X-Slack-Signature"),
            body=request.body,
        )

    def diagnose(self, request: HttpRequest) -> str:
        secret = self.secret(request, "signing_secret")
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        given = request.headers.get("X-Slack-Signature", "").strip()
        for label, variant in body_variants(request.body):
            basestring = b"v0:" + timestamp.encode() + b":" + variant
            if hmac.compare_digest(
                "v0=" + hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest(), given
            ):
                return mismatch(label)
        return "no common variant verifies: most likely the signing secret differs from the app's"


class SlackEventsWebhook(_Slack):
    """Slack's Events API for one connection: `url_verification` answered with its challenge; messages
    recorded, and `approve|reject <id> <hash> <reason>` decided as the sender's mapped principal."""

    name = "slack-events"
    path = "channels/slack/<str:connection>/events/"

    def _event(self, request: HttpRequest) -> dict[str, Any]:
        cached = getattr(request, "_slack_event", None)
        if cached is None:
            cached = json_object(request.body)
            request._slack_event = cached
        return cached

    def delivery_id(self, request: HttpRequest) -> str | None:
        payload = self._event(request)
        if payload.get("type") == "url_verification":
            return None
        event_id = payload.get("event_id")
        if not isinstance(event_id, str) or not event_id:
            raise ControlPlaneError("CHANNEL_MALFORMED", "an event callback without event_id")
        return self.scoped(request, event_id)

    def accept(self, request: HttpRequest, principal: Any) -> dict[str, Any]:
        payload = self._event(request)
        if payload.get("type") == "url_verification":
            return {"challenge": text_of(payload.get("challenge"))}
        if payload.get("type") != "event_callback" or not isinstance(payload.get("event"), dict):
            raise ControlPlaneError("CHANNEL_MALFORMED", "not an event_callback")
        event = payload["event"]
        text = text_of(event.get("text"))
        is_person = not event.get("bot_id") and isinstance(event.get("user"), str)
        return channel_message_receive(
            connection=self.connection(request),
            sender=text_of(event.get("user")) or text_of(event.get("bot_id")),
            text=text,
            delivery_id=payload["event_id"],
            kind=f"slack.{text_of(event.get('type')) or 'event'}",
            action=approval_action_parse(text) if is_person else None,
        )


class SlackInteractivityWebhook(_Slack):
    """Slack's interactivity requests for one connection: a click on an approval card's Approve or
    Reject button (its value `<approval id>:<content hash>`, the reason from the card's input) is decided
    as the clicking user's mapped principal."""

    name = "slack-interactivity"
    path = "channels/slack/<str:connection>/interactivity/"

    def _payload(self, request: HttpRequest) -> dict[str, Any]:
        cached = getattr(request, "_slack_payload", None)
        if cached is None:
            raw = _form(request.body).get("payload", "")
            try:
                cached = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ControlPlaneError("CHANNEL_MALFORMED", "payload is not JSON") from exc
            if not isinstance(cached, dict):
                raise ControlPlaneError("CHANNEL_MALFORMED", "payload is not a JSON object")
            request._slack_payload = cached
        return cached

    def delivery_id(self, request: HttpRequest) -> str | None:
        trigger = self._payload(request).get("trigger_id")
        if not isinstance(trigger, str) or not trigger:
            raise ControlPlaneError("CHANNEL_MALFORMED", "an interaction without trigger_id")
        return self.scoped(request, trigger)

    def accept(self, request: HttpRequest, principal: Any) -> dict[str, Any]:
        payload = self._payload(request)
        user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
        action = _button_action(payload)
        connection = self.connection(request)
        sender = text_of(user.get("id"))
        outcome = channel_message_receive(
            connection=connection,
            sender=sender,
            text=f"{action.decision} {action.approval} {action.content_hash}" if action else "",
            delivery_id=payload["trigger_id"],
            kind=f"slack.{text_of(payload.get('type')) or 'interaction'}",
            action=action,
        )
        container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
        if action is not None:
            # Outbox rows only: the answer goes back to Slack now, the card's update after the commit.
            slack_card_answer(
                connection=connection,
                approval=ApprovalRequest.objects.filter(
                    tenant=connection.tenant, pk=outcome.get("approval") or action.approval
                ).first(),
                channel=text_of(container.get("channel_id")),
                ts=text_of(container.get("message_ts")),
                user=sender,
                code=outcome.get("code"),
                trigger=payload["trigger_id"],
            )
        return outcome


def _button_action(payload: dict[str, Any]) -> ApprovalAction | None:
    actions = payload.get("actions")
    if payload.get("type") != "block_actions" or not isinstance(actions, list) or not actions:
        return None
    clicked = actions[0] if isinstance(actions[0], dict) else {}
    decision = {APPROVE_ACTION: "approve", REJECT_ACTION: "reject"}.get(text_of(clicked.get("action_id")))
    if decision is None:
        return None
    approval, _, content_hash = text_of(clicked.get("value")).partition(":")
    return ApprovalAction(
        decision=decision, approval=approval, content_hash=content_hash, reason=_reason_of(payload)
    )


def _reason_of(payload: dict[str, Any]) -> str:
    values = (payload.get("state") or {}).get("values") or {}
    for block in values.values() if isinstance(values, dict) else ():
        field = block.get(REASON_ACTION) if isinstance(block, dict) else None
        if isinstance(field, dict):
            return text_of(field.get("value")).strip()
    return ""


class SlackCommandsWebhook(_Slack):
    """Slack's slash command for one connection (`/cp` by default): `approvals`, `incident ID`, `ack ID`,
    `approve|reject <id> <hash> <reason>`, `link CODE`, each as the caller's linked principal
    (controlplane.channels.services.commands)."""

    name = "slack-commands"
    path = "channels/slack/<str:connection>/commands/"

    def delivery_id(self, request: HttpRequest) -> str | None:
        trigger = _form(request.body).get("trigger_id", "")
        if not trigger:
            raise ControlPlaneError("CHANNEL_MALFORMED", "a command without trigger_id")
        return self.scoped(request, trigger)

    def accept(self, request: HttpRequest, principal: Any) -> dict[str, Any]:
        form = _form(request.body)
        outcome = channel_command_run(
            connection=self.connection(request),
            sender=form.get("user_id", ""),
            text=form.get("text", ""),
            delivery_id=form["trigger_id"],
            kind="slack.command",
        )
        reply = outcome.pop("reply", "")
        outcome.pop("detail", None)
        return {**outcome, "response_type": "ephemeral", "text": slack_escape(reply)}


SLACK_EVENTS = SlackEventsWebhook()
SLACK_INTERACTIVITY = SlackInteractivityWebhook()
SLACK_COMMANDS = SlackCommandsWebhook()
