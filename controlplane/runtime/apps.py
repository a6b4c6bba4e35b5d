from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    name = "controlplane.runtime"
    label = "runtime"
    verbose_name = "Runtime"

    def ready(self) -> None:
        from django.conf import settings

        from approvals.registry import register_subject
        from approvals.selectors import register_queue_context
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.navigation import (
            register_banner,
            register_console_urls,
            register_nav,
            register_panel,
        )
        from controlplane.kernel.periodic import register_periodic
        from controlplane.kernel.replay import register_replayer
        from controlplane.runtime import contracts, selectors, views
        from controlplane.runtime.capabilities import CAPABILITIES
        from controlplane.runtime.executors import register_builtin_executors
        from controlplane.runtime.gates import register_dispatch_gate
        from controlplane.runtime.replayers import RUNTIME_REPLAYER
        from controlplane.runtime.services import APPROVAL_SUBJECT, step_approval_resolve
        from controlplane.runtime.services.killswitch import killswitch_gate

        register_subject(APPROVAL_SUBJECT, step_approval_resolve)
        # The kill switch is the first dispatch gate: it holds what it covers before any other gate looks.
        register_dispatch_gate(killswitch_gate, first=True)
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
        register_queue_context(APPROVAL_SUBJECT, selectors.approval_queue_context)
        register_nav(
            app="runtime",
            label="Executions",
            url_name="runtime:executions",
            capability="executions.read",
            order=30,
            current=["runtime:trace", "runtime:trace-event"],
        )
        register_nav(
            app="runtime",
            label="Kill switch",
            url_name="runtime:killswitch",
            capability="killswitch.manage",
            order=50,
        )
        register_panel(
            name="executions",
            template="runtime/panel.html",
            context=views.panel_context,
            capability="executions.read",
            order=30,
        )
        # The pages rendering `{% banners %}` (the dashboard, the approval queue) shout an engaged switch.
        register_banner(
            name="killswitch",
            template="runtime/_killswitch_banner.html",
            context=views.killswitch_banner_context,
            capability=None,
            order=0,
        )
        register_console_urls(app="runtime", prefix="", urlconf="controlplane.runtime.urls_console")
        from controlplane.runtime.services.rollback import ROLLBACK_CONTRACTS
        from controlplane.runtime.skill_gate import register_skill_gates  # disabled/untrusted skills held

        register_skill_gates()
        register_contracts(ROLLBACK_CONTRACTS)
