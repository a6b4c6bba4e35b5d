from rest_framework.routers import SimpleRouter

from approvals import api

router = SimpleRouter()
router.register("approvals", api.ApprovalRequestViewSet, basename="approval")

urlpatterns = router.urls
