"""Incidents API under /api/v1/: signals (the generic ingest; Alertmanager and Grafana are webhook adapters,
incidents.webhooks), detection rules, evidence, incidents with their transitions and timeline, and
silences. Tenant-scoped, capability-guarded; the URLs are in incidents/urls.py.

- `signals`: `SignalViewSet`          - `rules`: `DetectionRuleViewSet`
- `incidents`: `EvidenceViewSet`, `IncidentViewSet`
- `silences`: `SilenceViewSet`        - `serializers`: every serializer, and the ingest answer's shape
"""

INGEST = "signals.ingest"
READ = "incidents.read"
MANAGE = "incidents.manage"
