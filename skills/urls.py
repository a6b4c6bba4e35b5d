from rest_framework.routers import SimpleRouter

from skills import api

router = SimpleRouter()
# Publishers first: `skills/publishers/` must not be read as the skill named "publishers".
router.register("skills/publishers", api.PublisherViewSet, basename="skill-publisher")
router.register("skills", api.SkillViewSet, basename="skill")

urlpatterns = router.urls
