from django.urls import path
from rest_framework.routers import SimpleRouter

from controlplane.runtime import api

router = SimpleRouter()
router.register("executions", api.ExecutionViewSet, basename="execution")

urlpatterns = [
    path("intents/", api.IntentCreateView.as_view(), name="intent-create"),
    path("actions/", api.ActionListView.as_view(), name="action-list"),
    path("killswitch/", api.KillSwitchView.as_view(), name="killswitch"),
    path("killswitch/held/", api.KillSwitchHeldView.as_view(), name="killswitch-held"),
    path("traces/<str:trace_id>/", api.TraceView.as_view(), name="trace"),
    *router.urls,
]
