from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from approvals.registry import register_subject
        from incidents.services.silences import APPROVAL_SUBJECT, resolve_silence_approval

        register_subject(APPROVAL_SUBJECT, resolve_silence_approval)
