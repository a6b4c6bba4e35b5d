from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "controlplane.channels"
    label = "channels"
    verbose_name = "Channels"

    def ready(self) -> None:
        from controlplane.channels.capabilities import CAPABILITIES
        from controlplane.identity.capabilities import register_capabilities

        register_capabilities(CAPABILITIES)

        from controlplane.channels import contracts
        from controlplane.kernel.contracts import register_contracts

        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)

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

        from approvals.registry import register_observer, register_subject
        from controlplane.channels.services.changes import DEPLOYMENT_SUBJECT, deployment_review_resolve
        from controlplane.channels.services.notifications import approval_observed

        register_observer("channels.notifications", approval_observed)
        register_subject(DEPLOYMENT_SUBJECT, deployment_review_resolve)

        from django.conf import settings

        from controlplane.kernel.periodic import register_periodic

        register_periodic(
            "channels-outbox-sweep",
            task="controlplane.channels.tasks.channel_outbox_sweep_task",
            every=lambda: settings.CONTROLPLANE_CHANNEL_OUTBOX_SWEEP_SECONDS,
            why="Send outbound chat messages that are due: retries after their back-off, lost tasks.",
        )
        register_periodic(
            "channels-refusals-digest",
            task="controlplane.channels.tasks.channel_refusals_digest_task",
            every=lambda: settings.CONTROLPLANE_CHANNEL_REFUSAL_DIGEST_SECONDS,
            why="Ledger a digest of each connection's refused deliveries (one event, not one per refusal).",
        )

        from controlplane.channels.panels import incident_changes
        from controlplane.kernel.navigation import register_detail_panel

        register_detail_panel(
            page="incidents.detail",
            name="channels.changes",
            template="channels/console/incident_changes.html",
            context=incident_changes,
            capability="incidents.read",
            order=50,
        )

        from controlplane.kernel.navigation import register_console_urls, register_nav

        register_nav(
            app="channels",
            label="Channels",
            url_name="channels:links",
            capability="channels.link",
            order=75,
            current=("channels:connections", "channels:deliveries"),
        )
        register_console_urls(
            app="channels", prefix="channels/", urlconf="controlplane.channels.urls_console"
        )
