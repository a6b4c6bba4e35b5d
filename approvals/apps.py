from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals.registry import register_subject
        from approvals.subjects import POLICY_ACTIVATE, resolve_policy_activation

        register_subject(POLICY_ACTIVATE, resolve_policy_activation)
