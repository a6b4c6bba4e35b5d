"""The Django full-stack view of `POST /api/v1/events/`: `EventIngestView`, reached through URL resolving
and every middleware (runserver, the test client, and any deployment without the fast paths).

A POST never enters DRF: `dispatch` hands it to `lean.ingest_post` (the same function the lean WSGI chain
of controlplane.serving calls). DRF serves the other methods (405, counted) and documents the endpoint.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.channels import services
from controlplane.channels.ingest import lean
from controlplane.channels.models import Producer
from controlplane.identity.authentication import BearerTokenAuthentication


class CloudEventsParser(BaseParser):
    """Declares the accepted media types for content negotiation and the schema; the view reads the raw
    bytes itself, so this parser never runs on the hot path."""

    media_type = "application/cloudevents+json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        return stream.read()


class JsonBytesParser(CloudEventsParser):
    media_type = "application/json"


_SIGNATURE_HEADERS = [
    OpenApiParameter("webhook-id", str, OpenApiParameter.HEADER, description="Unique delivery id."),
    OpenApiParameter("webhook-timestamp", str, OpenApiParameter.HEADER, description="Unix seconds."),
    OpenApiParameter(
        "webhook-signature",
        str,
        OpenApiParameter.HEADER,
        description="Space-separated `v1,<base64 HMAC-SHA256>` and/or `v1a,<base64 Ed25519>` signatures.",
    ),
]

_ACCEPTED = inline_serializer(
    "EventAccepted",
    {
        "seq": serializers.IntegerField(),
        "id": serializers.CharField(),
        "hash": serializers.CharField(),
        "verdict": serializers.ChoiceField(["verified", "expired-key", "unsigned", "unchecked"]),
        "key_id": serializers.CharField(allow_null=True),
        "fidelity": serializers.CharField(),
    },
)
_REFUSED = inline_serializer(
    "EventRefused",
    {
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "request_id": serializers.CharField(),
        "seq": serializers.IntegerField(required=False, allow_null=True),
    },
)


class EventIngestView(APIView):
    """Append one signed CloudEvent from a registered producer to the ledger."""

    authentication_classes = [BearerTokenAuthentication]
    parser_classes = [CloudEventsParser, JsonBytesParser]
    required_capability = services.INGEST_CAPABILITY
    producer: Producer | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":  # the hot path, without DRF (controlplane.channels.ingest.lean)
            return lean.ingest_post(request)
        return super().dispatch(request, *args, **kwargs)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        code = response.data.get("code") if isinstance(response.data, dict) else None
        if code:
            services.rejection_record(producer=self.producer, code=code)
        return response

    @extend_schema(
        request={
            "application/cloudevents+json": OpenApiTypes.OBJECT,
            "application/json": OpenApiTypes.OBJECT,
        },
        parameters=_SIGNATURE_HEADERS,
        responses={
            201: _ACCEPTED,
            400: _REFUSED,
            401: _REFUSED,
            403: _REFUSED,
            409: OpenApiResponse(_REFUSED, description="DUPLICATE_EVENT; `seq` names the original."),
            503: OpenApiResponse(_REFUSED, description="INGEST_OVERLOADED (with Retry-After: 1)."),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        """Documents the endpoint; `dispatch` sends every POST to `ingest.ingest_post` directly."""
        # (That docstring is the POST's description in the OpenAPI schema, `ingest` meaning this package.)
        return lean.ingest_post(request._request)
