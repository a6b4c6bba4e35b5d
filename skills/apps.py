from django.apps import AppConfig


class SkillsConfig(AppConfig):
    name = "skills"
    verbose_name = "Skills"

    def ready(self) -> None:
        from approvals.registry import register_subject
        from approvals.selectors import register_queue_context
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.navigation import register_console_urls, register_nav
        from controlplane.kernel.replay import register_replayer
        from skills import contracts, selectors, services
        from skills.capabilities import CAPABILITIES
        from skills.replay import SKILLS_REPLAYER

        register_capabilities(CAPABILITIES)
        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)
        register_subject(services.INSTALL_SUBJECT, services.install_approval_resolve)
        register_replayer(SKILLS_REPLAYER)
        register_queue_context(services.INSTALL_SUBJECT, selectors.install_queue_context)
        register_nav(
            app="skills",
            label="Skills",
            url_name="skills:registry",
            capability="skills.read",
            order=60,
            current=["skills:publishers", "skills:install-review"],
        )
        register_console_urls(app="skills", prefix="skills/", urlconf="skills.urls_console")
        from controlplane.kernel.governance import register_check
        from skills.governance import CHECK as GOVERNANCE_CHECK

        register_check(GOVERNANCE_CHECK)  # governance validate: installed skills re-verify
