from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "controlplane.channels"
    label = "channels"
    verbose_name = "Channels"

    def ready(self) -> None:
        from controlplane.channels.capabilities import CAPABILITIES
        from controlplane.identity.capabilities import register_capabilities

        register_capabilities(CAPABILITIES)

        from controlplane.channels.providers import github, meta, slack, twilio
        from controlplane.kernel.webhooks import register_webhook_adapter

        for adapter in (
            slack.SLACK_EVENTS,
            slack.SLACK_INTERACTIVITY,
            slack.SLACK_COMMANDS,
            github.GITHUB,
            meta.META,
            twilio.TWILIO,
        ):
            register_webhook_adapter(adapter)

        from approvals.registry import register_observer
        from controlplane.channels.services.notifications import approval_observed

        register_observer("channels.notifications", approval_observed)

        from django.conf import settings

        from controlplane.kernel.periodic import register_periodic

        register_periodic(
            "channels-outbox-sweep",
            task="controlplane.channels.tasks.channel_outbox_sweep_task",
            every=lambda: settings.CONTROLPLANE_CHANNEL_OUTBOX_SWEEP_SECONDS,
            why="Send outbound chat messages that are due: retries after their back-off, lost tasks.",
        )
