"""Incidents endpoints under /api/v1/. The two webhook paths come before the router's `signals/{id}/`."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from incidents import api

router = SimpleRouter()
router.register("signals", api.SignalViewSet, basename="signal")
router.register("detection-rules", api.DetectionRuleViewSet, basename="detection-rule")
router.register("evidence", api.EvidenceViewSet, basename="evidence")
router.register("incidents", api.IncidentViewSet, basename="incident")
router.register("silences", api.SilenceViewSet, basename="silence")

urlpatterns = [
    path("signals/alertmanager/", api.AlertmanagerIngestView.as_view(), name="signals-alertmanager"),
    path("signals/grafana/", api.GrafanaIngestView.as_view(), name="signals-grafana"),
    *router.urls,
]
