from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    name = "controlplane.runtime"
    label = "runtime"
    verbose_name = "Runtime"

    def ready(self) -> None:
        from approvals.registry import register_subject
        from controlplane.runtime.services import APPROVAL_SUBJECT, resolve_step_approval

        register_subject(APPROVAL_SUBJECT, resolve_step_approval)
