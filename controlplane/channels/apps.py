from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "controlplane.channels"
    label = "channels"
    verbose_name = "Channels"

    def ready(self) -> None:
        from controlplane.channels.capabilities import CAPABILITIES
        from controlplane.identity.capabilities import register_capabilities

        register_capabilities(CAPABILITIES)
