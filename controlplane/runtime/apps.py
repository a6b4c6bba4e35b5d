from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    name = "controlplane.runtime"
    label = "runtime"
    verbose_name = "Runtime"

    def ready(self) -> None:
        from django.conf import settings

        from approvals.registry import register_subject
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.periodic import register_periodic
        from controlplane.kernel.replay import register_replayer
        from controlplane.runtime import contracts
        from controlplane.runtime.capabilities import CAPABILITIES
        from controlplane.runtime.executors import register_builtin_executors
        from controlplane.runtime.replayers import RUNTIME_REPLAYER
        from controlplane.runtime.services import APPROVAL_SUBJECT, step_approval_resolve

        register_subject(APPROVAL_SUBJECT, step_approval_resolve)
        register_builtin_executors()
        register_periodic(
            "runtime-sweep",
            task="controlplane.runtime.tasks.runtime_sweep_task",
            every=lambda: settings.CONTROLPLANE_SWEEP_INTERVAL_SECONDS,
            why="Re-dispatch steps whose worker died (lease expired) and publish what waits in the outbox.",
        )
        register_capabilities(CAPABILITIES)
        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)
        register_replayer(RUNTIME_REPLAYER)
