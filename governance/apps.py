from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel import governance as kernel
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.telemetry import declare_fidelity
        from controlplane.policy.services import register_activation_guard
        from controlplane.runtime.traces import register_intent_attachment
        from governance import checks, contracts, preflight, services
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
        register_intent_attachment("controlplane.telemetry.model_call.reported", intent_key="intent")
        declare_fidelity(
            "governance-preflight",
            fidelity="simulated",
            reason_code="TELEMETRY_SIMULATED",
            why="a replay of recorded traffic under a candidate profile, not what happened",
        )
