from django.apps import AppConfig


class PolicyConfig(AppConfig):
    name = "controlplane.policy"
    label = "policy"
    verbose_name = "Policy"

    def ready(self) -> None:
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.telemetry import declare_fidelity
        from controlplane.policy import contracts
        from controlplane.policy.capabilities import CAPABILITIES

        register_capabilities(CAPABILITIES)
        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)
        # Explain evaluates a hypothetical step: its answers say `simulated` (docs/telemetry.md).
        declare_fidelity(
            "policy-explain",
            fidelity="simulated",
            reason_code="TELEMETRY_SIMULATED",
            why="the verdict a real or hypothetical step would get, not a recorded decision",
        )
