"""The product's URLs plus one no-op endpoint, served only in benchmark runs (bench.settings).

`POST /bench/noop/` goes through the same middleware and DRF machinery as the ingest endpoint but does
nothing: no authentication, no database, no parsing of the body. Its throughput under the same gunicorn
configuration is the framework's ceiling that ingest is compared with. It must never be part of the
product's URL conf.
"""

from __future__ import annotations

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

NOOP_PATH = "/bench/noop/"


class NoopView(APIView):
    """Answers 201 with a small JSON body, like an accepted event, having done nothing."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    schema = None

    def post(self, request: Request) -> Response:
        return Response({"status": "ok"}, status=201)


urlpatterns = [
    path(NOOP_PATH.strip("/") + "/", NoopView.as_view(), name="bench-noop"),
    path("", include("controlplane.urls")),
]
