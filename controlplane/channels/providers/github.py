"""GitHub: a repository's or organisation's webhook for one connection.

Verified as GitHub documents it: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` keyed
by the webhook's secret. Deduplicated on `X-GitHub-Delivery` (a redelivery from GitHub's UI carries the
same GUID). `ping` is answered; every event is recorded; deployments, deployment statuses, completed
workflow runs, pushes and merged pull requests become change signals, and a deployment protection rule
opens an approval request (controlplane.channels.services.changes); an issue or pull-request comment
`/approve <id> <hash> <reason>` (or `/reject ...`) is decided as the commenter's mapped principal (the
mapping is by GitHub login).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from controlplane.channels.models import ChannelProvider
from controlplane.channels.providers.base import (
    ChannelAdapter,
    hub_diagnose,
    hub_signature_check,
    json_object,
    text_of,
)
from controlplane.channels.services.changes import change_signal_record, deployment_review_open
from controlplane.channels.services.messages import approval_action_parse, channel_message_receive
from controlplane.kernel.errors import ControlPlaneError

_COMMENT_EVENTS = {"issue_comment", "pull_request_review_comment", "discussion_comment"}


class GitHubWebhook(ChannelAdapter):
    """GitHub's webhook for one connection: signed with X-Hub-Signature-256, deduplicated on
    X-GitHub-Delivery; `/approve|/reject <id> <hash> <reason>` comments decide approvals."""

    name = "github"
    path = "channels/github/<str:connection>/"
    provider = ChannelProvider.GITHUB
    capability = ""

    def verify(self, request: HttpRequest) -> None:
        hub_signature_check(
            header=request.headers.get("X-Hub-Signature-256"),
            secret=self.secret(request, "webhook_secret"),
            body=request.body,
        )

    def diagnose(self, request: HttpRequest) -> str:
        return hub_diagnose(
            header=request.headers.get("X-Hub-Signature-256"),
            secret=self.secret(request, "webhook_secret"),
            body=request.body,
        )

    def delivery_id(self, request: HttpRequest) -> str | None:
        delivery = (request.headers.get("X-GitHub-Delivery") or "").strip()
        if not delivery or len(delivery) > 100:
            raise ControlPlaneError("CHANNEL_MALFORMED", "X-GitHub-Delivery is required")
        return self.scoped(request, delivery)

    def accept(self, request: HttpRequest, principal: Any) -> dict[str, Any]:
        event = (request.headers.get("X-GitHub-Event") or "").strip()
        payload = json_object(request.body)
        sender = text_of((payload.get("sender") or {}).get("login"))
        delivery = request.headers["X-GitHub-Delivery"].strip()
        connection = self.connection(request)
        if event == "ping":
            outcome = channel_message_receive(
                connection=connection, sender=sender, text="", delivery_id=delivery, kind="github.ping"
            )
            return {**outcome, "pong": True}
        found: dict[str, Any] = {}
        if event == "deployment_protection_rule" and payload.get("action") == "requested":
            found = deployment_review_open(connection=connection, payload=payload, delivery_id=delivery)
        else:
            change = change_signal_record(
                connection=connection, event=event, payload=payload, delivery_id=delivery
            )
            found = {"change": change.pk} if change is not None else {}
        text, action = "", None
        if event in _COMMENT_EVENTS and payload.get("action") == "created":
            text = text_of((payload.get("comment") or {}).get("body"))
            if text.lstrip().startswith("/"):
                action = approval_action_parse(text)
        outcome = channel_message_receive(
            connection=connection,
            sender=sender,
            text=text,
            delivery_id=delivery,
            kind=f"github.{event or 'event'}",
            action=action,
        )
        return {**outcome, **found}


GITHUB = GitHubWebhook()
