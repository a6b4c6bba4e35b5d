from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from approvals.registry import register_subject
        from incidents.services.silences import APPROVAL_SUBJECT, resolve_silence_approval

        register_subject(APPROVAL_SUBJECT, resolve_silence_approval)

        from controlplane.kernel.webhooks import register_webhook_adapter
        from incidents.webhooks import ALERTMANAGER, GRAFANA

        register_webhook_adapter(ALERTMANAGER)
        register_webhook_adapter(GRAFANA)
