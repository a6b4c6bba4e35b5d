"""The counters of signed ingest's refusals (`GET /api/v1/events/rejections/`).

The ingest endpoint itself, `POST /api/v1/events/`, is served by controlplane.channels.ingest (its view
is `controlplane.channels.ingest.view.EventIngestView`).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.channels import selectors


class RejectionCountsView(APIView):
    """Refusals of the ingest endpoint, counted per producer (of the caller's tenant, plus "unknown")."""

    required_capability = "ledger.read"

    @extend_schema(
        responses=inline_serializer(
            "IngestRejections",
            {
                "total": serializers.IntegerField(),
                "counters": inline_serializer(
                    "IngestRejectionCounter",
                    {
                        "producer": serializers.CharField(),
                        "code": serializers.CharField(),
                        "count": serializers.IntegerField(),
                    },
                    many=True,
                ),
            },
        )
    )
    def get(self, request: Request) -> Response:
        counts = selectors.rejection_counts(tenant=request.user.tenant)
        return Response(
            {
                "total": sum(c.count for c in counts),
                "counters": [{"producer": c.producer, "code": c.code, "count": c.count} for c in counts],
            }
        )
