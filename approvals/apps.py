from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals import contracts, views
        from approvals.capabilities import CAPABILITIES
        from approvals.registry import register_subject
        from approvals.subjects import POLICY_ACTIVATE, resolve_policy_activation
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.navigation import register_console_urls, register_nav, register_panel
        from controlplane.kernel.periodic import register_periodic

        register_subject(POLICY_ACTIVATE, resolve_policy_activation)
        register_periodic(
            "approvals-sweep",
            task="approvals.tasks.approvals_sweep_task",
            every=30.0,
            why="Expire overdue approval requests (fail closed) and escalate along each request's ladder.",
        )
        register_capabilities(CAPABILITIES)
        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)
        register_nav(
            app="approvals",
            label="Approvals",
            url_name="approvals:queue",
            capability="approvals.read",
            order=20,
            count=views.nav_count,
            count_label="pending approvals",
        )
        register_panel(
            name="approvals",
            template="approvals/panel.html",
            context=views.panel_context,
            capability="approvals.read",
            order=10,
        )
        register_console_urls(app="approvals", prefix="approvals/", urlconf="approvals.urls_console")
