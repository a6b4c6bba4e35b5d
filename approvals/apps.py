from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals import contracts
        from approvals.capabilities import CAPABILITIES
        from approvals.registry import register_subject
        from approvals.subjects import POLICY_ACTIVATE, resolve_policy_activation
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
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
