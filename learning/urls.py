from rest_framework.routers import SimpleRouter

from learning import api

router = SimpleRouter()
router.register("learning/outcomes", api.OutcomeViewSet, basename="learning-outcome")
router.register("learning/claims", api.ClaimViewSet, basename="learning-claim")
router.register("learning/findings", api.FindingViewSet, basename="learning-finding")
router.register("learning/reports", api.ReportViewSet, basename="learning-report")
router.register("learning/proposals", api.ProposalViewSet, basename="learning-proposal")

urlpatterns = router.urls
