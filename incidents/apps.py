from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from approvals.registry import register_subject
        from approvals.selectors import register_queue_context
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.navigation import register_console_urls, register_nav, register_panel
        from controlplane.kernel.replay import register_replayer
        from controlplane.kernel.sinks import register_signal_sink
        from controlplane.kernel.webhooks import register_webhook_adapter
        from controlplane.runtime.services import APPROVAL_SUBJECT as STEP_SUBJECT
        from incidents import contracts, selectors, views
        from incidents.capabilities import CAPABILITIES
        from incidents.replay import INCIDENTS_REPLAYER
        from incidents.services.silences import APPROVAL_SUBJECT, resolve_silence_approval
        from incidents.sinks import raised_signal_ingest
        from incidents.webhooks import ALERTMANAGER, GRAFANA

        register_subject(APPROVAL_SUBJECT, resolve_silence_approval)
        # A remediation step waiting for approval says, in the queue, which incident it belongs to.
        register_queue_context(STEP_SUBJECT, selectors.approval_queue_incidents)
        register_capabilities(CAPABILITIES)
        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)
        register_replayer(INCIDENTS_REPLAYER)
        register_signal_sink("incidents", raised_signal_ingest)  # e.g. a crash-looping plugin (plugins app)
        register_nav(
            app="incidents",
            label="Incidents",
            url_name="incidents:board",
            capability="incidents.read",
            order=40,
            current=["incidents:detail", "incidents:signals", "incidents:silences"],
            count=views.nav_count,
            count_label="open incidents",
        )
        register_panel(
            name="incidents",
            template="incidents/panel.html",
            context=views.panel_context,
            capability="incidents.read",
            order=20,
        )
        register_webhook_adapter(ALERTMANAGER)
        register_webhook_adapter(GRAFANA)
        register_console_urls(app="incidents", prefix="incidents/", urlconf="incidents.urls_console")
