from django.urls import path
from rest_framework.routers import SimpleRouter

from controlplane.ledger import api

router = SimpleRouter()
router.register("events", api.LedgerEventViewSet, basename="ledger-event")
router.register("checkpoints", api.CheckpointViewSet, basename="ledger-checkpoint")

urlpatterns = [
    path("verify/", api.VerifyView.as_view(), name="ledger-verify"),
    path("verify/<str:job_id>/", api.VerifyJobView.as_view(), name="ledger-verify-job"),
    *router.urls,
]
