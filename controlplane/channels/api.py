"""Signed CloudEvents ingest (`POST /api/v1/events/`) and its refusal counters.

The ingest view is a plain APIView on the hot path: it never parses the body through DRF (the signature
is verified over the raw bytes), sheds load before authenticating, and counts every refusal.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.channels import selectors, services
from controlplane.channels.models import Producer
from controlplane.errors import ControlPlaneError
from controlplane.identity.authentication import BearerTokenAuthentication


class _InflightLimit:
    """A per-process bound on concurrent ingests, rebuilt if the setting changes (tests lower it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._semaphore = threading.BoundedSemaphore(1)

    def semaphore(self) -> threading.BoundedSemaphore:
        limit = max(int(settings.CONTROLPLANE_INGEST_MAX_INFLIGHT), 0)
        if limit != self._limit:
            with self._lock:
                if limit != self._limit:
                    self._semaphore = threading.BoundedSemaphore(limit)
                    self._limit = limit
        return self._semaphore


_inflight = _InflightLimit()


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
        semaphore = _inflight.semaphore()
        if not semaphore.acquire(blocking=False):
            services.rejection_record(producer=None, code="INGEST_OVERLOADED")
            error = ControlPlaneError("INGEST_OVERLOADED")
            body = {**error.as_dict(), "request_id": getattr(request, "request_id", None)}
            return JsonResponse(body, status=error.status, headers={"Retry-After": "1"})
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            semaphore.release()

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
    def post(self, request: Request) -> Response:
        self.producer, keys = selectors.producer_for_principal(principal=request.user)
        try:
            body = request.body
        except RequestDataTooBig as exc:
            raise ControlPlaneError("MALFORMED_EVENT", "the body is larger than the upload limit") from exc
        headers = request.headers
        accepted = services.event_ingest(
            producer=self.producer,
            keys=keys,
            body=body,
            content_type=request.content_type.partition(";")[0].strip().lower(),
            webhook_id=headers.get("webhook-id"),
            webhook_timestamp=headers.get("webhook-timestamp"),
            webhook_signature=headers.get("webhook-signature"),
        )
        return Response(accepted.as_dict(), status=201)


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
