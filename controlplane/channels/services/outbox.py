"""The channels outbox: every outbound call to a provider is a `ChannelMessage` row first.

`channel_message_enqueue` writes the row inside the caller's transaction (an approval opened, a decision,
a link started: the row commits with its cause or not at all) and publishes its task after the commit.
`channel_message_send` makes the call under the row's lock, so two workers never send one row twice, and
records the answer: sent (ledgered `controlplane.channels.notification.sent` with the provider's message
id) or failed, retried with exponential back-off as Celery's `retry_backoff` does (base
CONTROLPLANE_CHANNEL_OUTBOX_BACKOFF_SECONDS, doubling, at most 300 s) up to
CONTROLPLANE_CHANNEL_OUTBOX_MAX_ATTEMPTS, then given up (`controlplane.channels.notification.failed`).
`channel_outbox_sweep` (beat) sends what is due: first attempts whose task the broker lost, and retries.

Delivery to the provider is at least once: a call that succeeded but whose commit failed is made again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from controlplane.channels.models import ChannelConnection, ChannelMessage, OutboundMethod, OutboundStatus
from controlplane.channels.services.outbound import provider_send
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append

logger = logging.getLogger(__name__)

BACKOFF_CAP_SECONDS = 300
SWEEP_BATCH = 100
_NOT_RETRIED = {"CHANNEL_NOT_CONFIGURED", "CHANNEL_SECRETS_KEY_UNAVAILABLE"}
_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


def channel_message_enqueue(
    *,
    connection: ChannelConnection,
    key: str,
    kind: str,
    to: str,
    payload: dict[str, Any],
    method: str = OutboundMethod.POST,
    approval_id: str = "",
    reply_to: ChannelMessage | None = None,
) -> ChannelMessage:
    """The outbox row for `key` (made once: asking again returns the first), published after the commit."""
    message, created = ChannelMessage.objects.get_or_create(
        key=key[:255],
        defaults={
            "tenant_id": connection.tenant_id,
            "connection": connection,
            "kind": kind,
            "method": method,
            "to": to,
            "payload": payload,
            "approval_id": approval_id,
            "reply_to": reply_to,
        },
    )
    if created:
        transaction.on_commit(lambda: channel_message_publish(message_id=message.pk))
    return message


def channel_message_publish(*, message_id: int) -> bool:
    """Hand the row's send to the broker; False when it waits for the sweeper (the broker is down)."""
    from controlplane.channels.tasks import channel_message_send_task  # the tasks import the services

    try:
        channel_message_send_task.apply_async((message_id,), retry=True, retry_policy=_PUBLISH_RETRY_POLICY)
    except (OperationalError, OSError) as exc:
        logger.warning("BROKER_UNAVAILABLE: channel message %s waits for the sweeper (%s)", message_id, exc)
        return False
    return True


def _backoff(attempts: int) -> timedelta:
    base = settings.CONTROLPLANE_CHANNEL_OUTBOX_BACKOFF_SECONDS
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS))


def _ledger(message: ChannelMessage, verb: str, **data: Any) -> None:
    connection = message.connection
    ledger_append(
        type=f"controlplane.channels.notification.{verb}",
        subject=f"channel/{connection.ref}",
        data={
            "provider": connection.provider,
            "connection": connection.ref,
            "kind": message.kind,
            "method": message.method,
            "to": message.to,
            "approval": message.approval_id,
            "attempts": message.attempts,
            "outbox": message.key,
            **data,
        },
        tenant=connection.tenant.slug,
        actor=connection.principal.ref,
        reason_codes=[data["code"]] if "code" in data else [],
    )


def channel_message_send(*, message_id: int, now: datetime | None = None) -> ChannelMessage | None:
    """Make the call row `message_id` stands for, once; safe to run twice and from two workers.

    A row locked by another worker, or no longer pending, is left alone. An update whose original
    message is not sent yet waits for it. Returns the row as it stands afterwards (None: locked elsewhere).
    """
    now = now or timezone.now()
    with transaction.atomic():
        message = (
            ChannelMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("connection__tenant", "connection__principal", "reply_to")
            .filter(pk=message_id)
            .first()
        )
        if message is None or message.status != OutboundStatus.PENDING:
            return message
        parent = message.reply_to
        if parent is not None and parent.status != OutboundStatus.SENT:
            if parent.status == OutboundStatus.FAILED:
                return _give_up(message, "CHANNEL_OUTBOUND_FAILED", "the message it updates was never sent")
            message.next_attempt_at = now + _backoff(1)
            message.save(update_fields=["next_attempt_at"])
            return message
        message.attempts += 1
        try:
            sent = provider_send(message)
        except ControlPlaneError as exc:
            last = message.attempts >= settings.CONTROLPLANE_CHANNEL_OUTBOX_MAX_ATTEMPTS
            if exc.code in _NOT_RETRIED or last:
                return _give_up(message, exc.code, exc.detail)
            message.last_code, message.last_error = exc.code, str(exc.detail)[:300]
            message.next_attempt_at = now + _backoff(message.attempts)
            message.save(update_fields=["attempts", "last_code", "last_error", "next_attempt_at"])
            return message
        message.status = OutboundStatus.SENT
        message.sent_at = now
        message.provider_message_id = sent.message_id[:120]
        message.provider_channel = sent.channel[:120]
        message.last_code = message.last_error = ""
        if message.payload.get("scrub"):  # it carried a code: nothing of it stays once delivered
            message.payload = {"scrubbed": True}
        message.save(
            update_fields=[
                "payload",
                "status",
                "sent_at",
                "attempts",
                "provider_message_id",
                "provider_channel",
                "last_code",
                "last_error",
            ]
        )
        _ledger(message, "sent", message_id=message.provider_message_id)
        return message


def _give_up(message: ChannelMessage, code: str, detail: str) -> ChannelMessage:
    message.status = OutboundStatus.FAILED
    message.last_code, message.last_error = code, str(detail)[:300]
    message.save(update_fields=["status", "attempts", "last_code", "last_error"])
    _ledger(message, "failed", code=code)
    return message


def channel_outbox_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Send every pending row that is due (oldest first, a bounded batch); returns what happened."""
    now = now or timezone.now()
    due = list(
        ChannelMessage.objects.filter(status=OutboundStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    counts = {"sent": 0, "failed": 0, "pending": 0}
    for message_id in due:
        message = channel_message_send(message_id=message_id, now=now)
        if message is not None:
            counts[message.status] += 1
    return counts
