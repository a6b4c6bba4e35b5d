"""Celery tasks of the channels app: the outbox's sends (controlplane.channels.services.outbox). Slack
resends a delivery not acknowledged within 3 s, so nothing outbound runs inside a request: it is an
outbox row, sent by these after the commit."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="controlplane.channels.tasks.channel_message_send_task")
def channel_message_send_task(message_id: int) -> str:
    """Send one outbox row; safe to run twice (a sent row is left alone; a failure waits for the sweep)."""
    from controlplane.channels.services.outbox import channel_message_send

    message = channel_message_send(message_id=message_id)
    return message.status if message is not None else "locked"


@shared_task(name="controlplane.channels.tasks.channel_outbox_sweep_task")
def channel_outbox_sweep_task() -> dict[str, int]:
    """Queue the incident notifications the ledger holds since the last run, then send what is due in the
    outbox: first attempts, retries after their back-off, and rows whose task was lost."""
    from controlplane.channels.services.incidents import incident_notifications_relay
    from controlplane.channels.services.outbox import channel_outbox_sweep

    relayed = incident_notifications_relay()
    return {"incident_events": relayed, **channel_outbox_sweep()}


@shared_task(name="controlplane.channels.tasks.channel_refusals_digest_task")
def channel_refusals_digest_task() -> int:
    """Ledger one digest of refused deliveries per connection that had some since the last run."""
    from controlplane.channels.services.refusals import channel_refusals_digest

    return channel_refusals_digest()
