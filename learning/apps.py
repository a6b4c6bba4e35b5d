from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "learning"
    verbose_name = "Learning"

    def ready(self) -> None:
        from django.conf import settings

        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.periodic import register_periodic
        from controlplane.kernel.replay import register_replayer
        from learning import contracts
        from learning.capabilities import CAPABILITIES
        from learning.replay import LEARNING_REPLAYER

        register_capabilities(CAPABILITIES)
        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)
        register_replayer(LEARNING_REPLAYER)
        register_periodic(
            "learning-calibrate",
            task="learning.tasks.learning_calibrate_task",
            every=lambda: settings.CONTROLPLANE_LEARNING_CALIBRATE_SCHEDULE,
            why="Offline calibration of every tenant from closed incidents and finished executions.",
        )
