"""Channel endpoints under /api/v1/: signed event ingest and its refusal counters."""

from django.urls import path

from controlplane.channels import api
from controlplane.channels.ingest.view import EventIngestView

urlpatterns = [
    path("events/", EventIngestView.as_view(), name="events-ingest"),
    path("events/rejections/", api.RejectionCountsView.as_view(), name="events-rejections"),
]
