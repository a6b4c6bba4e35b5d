from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "learning"
    verbose_name = "Learning"

    def ready(self) -> None:
        from django.conf import settings

        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.navigation import register_console_urls, register_nav
        from controlplane.kernel.periodic import register_periodic
        from controlplane.kernel.replay import register_replayer
        from learning import contracts
        from learning.capabilities import CAPABILITIES
        from learning.replay import LEARNING_REPLAYER

        register_capabilities(CAPABILITIES)
        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)
        register_replayer(LEARNING_REPLAYER)
        register_nav(
            app="learning",
            label="Learning",
            url_name="learning:learning",
            capability="learning.read",
            order=70,
        )
        register_console_urls(app="learning", prefix="learning/", urlconf="learning.urls_console")
        register_periodic(
            "learning-calibrate",
            task="learning.tasks.learning_calibrate_task",
            every=lambda: settings.CONTROLPLANE_LEARNING_CALIBRATE_SCHEDULE,
            why="Offline calibration of every tenant from closed incidents and finished executions.",
        )
