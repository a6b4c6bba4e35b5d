from django.apps import AppConfig


class SkillsConfig(AppConfig):
    name = "skills"
    verbose_name = "Skills"

    def ready(self) -> None:
        from controlplane.identity.capabilities import register_capabilities
        from controlplane.kernel.contracts import register_contracts
        from controlplane.kernel.navigation import register_console_urls, register_nav
        from skills import contracts
        from skills.capabilities import CAPABILITIES

        register_capabilities(CAPABILITIES)
        register_contracts(contracts.CONTRACTS, covers=contracts.COVERS)
        register_nav(
            app="skills", label="Skills", url_name="skills:registry", capability="skills.read", order=60
        )
        register_console_urls(app="skills", prefix="skills/", urlconf="skills.urls_console")
        from controlplane.kernel.governance import register_check
        from skills.governance import CHECK as GOVERNANCE_CHECK

        register_check(GOVERNANCE_CHECK)  # governance validate: installed skills re-verify
