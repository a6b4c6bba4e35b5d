from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel import governance as kernel
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.navigation import (
            register_banner,
            register_console_urls,
            register_nav,
            register_panel,
        )
        from controlplane.kernel.telemetry import declare_fidelity
        from controlplane.policy.services import register_activation_guard
        from controlplane.runtime.traces import register_intent_attachment
        from governance import checks, contracts, preflight, services, views
        from governance.capabilities import CAPABILITIES, PLATFORM_GOVERNANCE

        register_capabilities(CAPABILITIES)
        register_capabilities(
            {PLATFORM_GOVERNANCE: "Change the enforcement rollback toggle (warn | enforce)."}
        )
        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)
        for check in checks.CHECKS:
            kernel.register_check(check)
        kernel.register_enforcement_source(services.enforcement_source)
        kernel.register_counter_sink(services.enforcement_count)
        register_activation_guard(preflight.activation_guard)
        register_nav(
            app="governance",
            label="Governance",
            url_name="governance:page",
            capability="governance.read",
            order=80,
        )
        register_panel(
            name="governance",
            template="governance/panel.html",
            context=views.panel_context,
            capability="governance.read",
            order=60,
        )
        register_banner(
            name="enforcement",
            template="governance/_enforcement_banner.html",
            context=views.banner_context,
            capability=None,
            order=1,
        )
        register_console_urls(app="governance", prefix="governance/", urlconf="governance.urls_console")
        register_intent_attachment("controlplane.telemetry.model_call.reported", intent_key="intent")
        declare_fidelity(
            "governance-preflight",
            fidelity="simulated",
            reason_code="TELEMETRY_SIMULATED",
            why="a replay of recorded traffic under a candidate profile, not what happened",
        )
