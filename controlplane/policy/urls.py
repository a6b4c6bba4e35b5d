"""Policy endpoints under /api/v1/policy/: profiles and explain."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from controlplane.policy import api

router = SimpleRouter()
router.register("profiles", api.PolicyProfileViewSet, basename="policy-profile")

urlpatterns = [path("explain/", api.ExplainView.as_view(), name="policy-explain"), *router.urls]
