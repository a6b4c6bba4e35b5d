from rest_framework.routers import SimpleRouter

from plugins import api

router = SimpleRouter()
router.register("plugins/reviews", api.ReviewItemViewSet, basename="plugin-review")
router.register("plugins", api.PluginViewSet, basename="plugin")

urlpatterns = router.urls
