from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "controlplane.identity"
    label = "identity"
    verbose_name = "Identity"

    def ready(self) -> None:
        from controlplane.identity import schema, signals  # noqa: F401  (OpenAPI schemes; sign-in events)
        from controlplane.identity.capabilities import IDENTITY_CAPABILITIES, register_capabilities
        from controlplane.identity.scope import CAPABILITIES as PLATFORM_CAPABILITIES
        from controlplane.identity.selectors import console_principal
        from controlplane.kernel.pages import register_principal_resolver
        from controlplane.ledger.capabilities import CAPABILITIES as LEDGER_CAPABILITIES

        register_principal_resolver(console_principal)
        register_capabilities(IDENTITY_CAPABILITIES)
        register_capabilities(LEDGER_CAPABILITIES)  # the ledger sits below identity
        register_capabilities(PLATFORM_CAPABILITIES)  # the platform scope (controlplane/identity/scope.py)
