from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "controlplane.channels"
    label = "channels"
    verbose_name = "Channels"
