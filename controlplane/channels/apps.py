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
