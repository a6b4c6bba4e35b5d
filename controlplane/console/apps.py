from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "controlplane.console"
    label = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from controlplane.console.capabilities import CAPABILITIES
        from controlplane.identity.capabilities import register_capabilities

        register_capabilities(CAPABILITIES)
