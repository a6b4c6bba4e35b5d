"""Governance endpoints under /api/v1/: governance/ (overview, enforcement, preflight), telemetry/."""

from django.urls import path

from governance import api

urlpatterns = [
    path("governance/", api.GovernanceView.as_view(), name="governance"),
    path("governance/enforcement/", api.EnforcementView.as_view(), name="governance-enforcement"),
    path("governance/preflight/", api.PreflightView.as_view(), name="governance-preflight"),
    path("telemetry/model-calls/", api.ModelCallView.as_view(), name="telemetry-model-calls"),
]
