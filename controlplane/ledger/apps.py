from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "controlplane.ledger"
    label = "ledger"
    verbose_name = "Ledger"

    def ready(self) -> None:
        from django.conf import settings

        from controlplane.kernel.periodic import register_periodic

        register_periodic(
            "ledger-checkpoint",
            task="controlplane.ledger.tasks.ledger_checkpoint_task",
            every=lambda: settings.CONTROLPLANE_CHECKPOINT_INTERVAL_SECONDS,
            why="Sign the chain head so an exported checkpoint can later expose a rewritten history.",
        )
