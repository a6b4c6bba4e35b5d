from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "controlplane.console"
    label = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from controlplane.console import views
        from controlplane.console.capabilities import CAPABILITIES
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.navigation import register_nav, register_panel

        register_capabilities(CAPABILITIES)
        register_nav(app="console", label="Dashboard", url_name="console:dashboard", capability=None, order=0)
        register_nav(
            app="console",
            label="Ledger",
            url_name="console:ledger",
            capability="ledger.read",
            order=10,
            current=["console:event"],
        )
        register_panel(
            name="integrity",
            template=views.INTEGRITY_TEMPLATE,
            context=views.integrity_context,
            capability=None,  # without ledger.read it says what it would show, and why not
            order=100,
        )
        register_panel(
            name="recent-events",
            template="console/panels/recent_events.html",
            context=views.recent_events_context,
            capability="ledger.read",
            order=110,
        )
        register_panel(
            name="ingest-rejections",
            template="console/panels/ingest_rejections.html",
            context=views.ingest_rejections_context,
            capability=None,
            order=120,
        )
