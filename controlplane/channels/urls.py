"""Channel endpoints under /api/v1/: signed event ingest, its refusal counters, and one URL per registered
inbound webhook adapter (controlplane.kernel.webhooks; e.g. incidents' `signals/alertmanager/`). The
project includes these before the apps' own URLs, so an adapter's path wins over a router's `{id}/`."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from controlplane.channels import api
from controlplane.channels.ingest.view import EventIngestView
from controlplane.channels.webhooks import webhook_urlpatterns

router = SimpleRouter()
router.register("channels/connections", api.ChannelConnectionViewSet, basename="channel-connection")
router.register("channels/identities", api.ChannelIdentityViewSet, basename="channel-identity")
router.register("channels/links", api.ChannelLinkViewSet, basename="channel-link")
router.register("channels/my-identities", api.MyIdentityViewSet, basename="channel-my-identity")

urlpatterns = [
    path("events/", EventIngestView.as_view(), name="events-ingest"),
    path("events/rejections/", api.RejectionCountsView.as_view(), name="events-rejections"),
    *router.urls,
    *webhook_urlpatterns(),
]
