"""Incidents endpoints under /api/v1/. Alertmanager's and Grafana's webhooks (`signals/alertmanager/`,
`signals/grafana/`) are adapters (incidents/webhooks.py) whose URLs the channels app serves; its URLs are
included before these, so they come before the router's `signals/{id}/`."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from incidents.api import incidents, labels, rules, signals, silences

router = SimpleRouter()
router.register("signals", signals.SignalViewSet, basename="signal")
router.register("detection-rules", rules.DetectionRuleViewSet, basename="detection-rule")
router.register("evidence", incidents.EvidenceViewSet, basename="evidence")
router.register("incidents", incidents.IncidentViewSet, basename="incident")
router.register("silences", silences.SilenceViewSet, basename="silence")

urlpatterns = [
    path("label-mapping/", labels.LabelMappingView.as_view(), name="label-mapping"),
    *router.urls,
]
