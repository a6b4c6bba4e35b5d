from rest_framework.routers import SimpleRouter

from skills import api

router = SimpleRouter()
router.register("skills", api.SkillViewSet, basename="skill")

urlpatterns = router.urls
