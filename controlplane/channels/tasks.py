"""Celery tasks of the channels app: outbound work done after a delivery's commit (Slack resends a
delivery not acknowledged within 3 s, so nothing outbound runs inside the request)."""

from __future__ import annotations

from celery import shared_task

from controlplane.kernel.errors import ControlPlaneError


@shared_task(
    name="controlplane.channels.tasks.slack_card_update_task",
    autoretry_for=(ControlPlaneError,),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def slack_card_update_task(connection_id: int, channel: str, ts: str, text: str) -> None:
    """Update a Slack approval card with its outcome; safe to run twice (chat.update is idempotent)."""
    from controlplane.channels.models import ChannelConnection
    from controlplane.channels.services.outbound import slack_card_update

    connection = ChannelConnection.objects.select_related("tenant", "principal").get(pk=connection_id)
    slack_card_update(
        connection=connection, channel=channel, ts=ts, text=text, actor=connection.principal.ref
    )
