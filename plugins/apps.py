from django.apps import AppConfig


class PluginsConfig(AppConfig):
    name = "plugins"
    verbose_name = "Plugins"

    def ready(self) -> None:
        from django.conf import settings

        from approvals.registry import register_subject
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.navigation import register_console_urls, register_nav, register_panel
        from controlplane.kernel.periodic import register_periodic
        from controlplane.kernel.replay import register_replayer
        from controlplane.runtime.gates import register_dispatch_gate
        from plugins import contracts, selectors, views
        from plugins.capabilities import CAPABILITIES
        from plugins.gates import PLUGINS_GATE
        from plugins.replay import PLUGINS_REPLAYER
        from plugins.services import RELEASE_SUBJECT, plugin_release_resolve
        from skills.verification import register_plugin_versions

        register_capabilities(CAPABILITIES)
        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)
        register_replayer(PLUGINS_REPLAYER)
        register_subject(RELEASE_SUBJECT, plugin_release_resolve)
        register_dispatch_gate(PLUGINS_GATE)
        register_plugin_versions(selectors.plugin_versions_present)
        from controlplane.kernel.governance import register_check
        from plugins.governance import CHECK as GOVERNANCE_CHECK

        register_check(GOVERNANCE_CHECK)  # governance validate: manifests, compatibility, dependencies
        register_periodic(
            "plugins-supervise",
            task="plugins.tasks.plugins_supervise_task",
            every=lambda: settings.CONTROLPLANE_PLUGIN_SUPERVISE_SECONDS,
            why="Supervise plugins from their evidence: probes, transitions, reviews, restarts, digests.",
        )
        register_nav(
            app="plugins",
            label="Plugins",
            url_name="plugins:health",
            capability="plugins.read",
            order=55,
            current=["plugins:detail", "plugins:reviews"],
            count=views.nav_count,
            count_label="plugin degradations waiting for review",
        )
        register_panel(
            name="plugins",
            template="plugins/panel.html",
            context=views.panel_context,
            capability="plugins.read",
            order=40,
        )
        register_console_urls(app="plugins", prefix="plugins/", urlconf="plugins.urls_console")
