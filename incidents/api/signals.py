"""Signals: the list and detail, and the generic ingest (`POST /api/v1/signals/`). Alertmanager's and
Grafana's webhooks are adapters (incidents.webhooks) served by the channels' one webhook view."""

from __future__ import annotations

from typing import Any

import django_filters
import orjson
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.jsontext import SUSPECT_ESCAPE, json_holds_unstorable_text
from incidents import normalise, selectors, services
from incidents.api import INGEST, READ
from incidents.api.serializers import INGESTED, REFUSED, SignalSerializer
from incidents.models import Severity, Signal, SignalStatus

MAX_BODY = 5 * 1024 * 1024


class RawJsonParser(BaseParser):
    """Declares application/json; the ingest views read the raw bytes themselves (signatures need them)."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        return stream.read()


def json_body(request: Any) -> Any:
    """The JSON of a signal ingest's raw body, or SIGNAL_INVALID naming `(body)`."""
    body = request.body
    if len(body) > MAX_BODY:
        raise ControlPlaneError("SIGNAL_INVALID", "(body): larger than 5 MiB", extra={"field": "(body)"})
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ControlPlaneError(
            "SIGNAL_INVALID", f"(body): not JSON ({exc})", extra={"field": "(body)"}
        ) from None
    if SUSPECT_ESCAPE.search(body) and json_holds_unstorable_text(payload):
        raise ControlPlaneError(
            "SIGNAL_INVALID",
            "(body): a string holds U+0000, which cannot be stored",
            extra={"field": "(body)"},
        )
    return payload


class SignalFilter(django_filters.FilterSet):
    service = django_filters.CharFilter()
    name = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=SignalStatus.choices)
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
    source = django_filters.CharFilter()
    # Strict: django-filter's BooleanFilter reads any unknown word (`banana`) as "no filter".
    suppressed = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")], method="_suppressed", help_text="hidden by a silence"
    )

    class Meta:
        model = Signal
        fields = ["service", "name", "status", "severity", "source", "suppressed"]

    def _suppressed(self, queryset: Any, name: str, value: str) -> Any:
        return queryset.filter(suppressed_by__isnull=value != "true")


class SignalViewSet(viewsets.ReadOnlyModelViewSet):
    """Signals, newest first (`?suppressed=true` shows what silences hid), and the generic ingest."""

    parser_classes = [RawJsonParser]
    serializer_class = SignalSerializer
    filterset_class = SignalFilter
    required_capabilities = {"list": READ, "retrieve": READ, "create": INGEST}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Signal.objects.none()
        return selectors.signal_list(tenant=self.request.user.tenant)

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: INGESTED, 201: INGESTED, 400: REFUSED},
        description="One signal object, or a list of them (at most 1000), in the generic shape.",
    )
    def create(self, request: Request) -> Response:
        payload = json_body(request)  # not DRF's parser: a body that is not JSON is SIGNAL_INVALID too
        items = payload if isinstance(payload, list) else [payload]
        if not items or len(items) > normalise.MAX_ALERTS:
            raise ControlPlaneError(
                "SIGNAL_INVALID", f"(body): 1 to {normalise.MAX_ALERTS} signals", extra={"field": "(body)"}
            )
        signals = [
            normalise.from_generic(item, at=f"[{index}]" if isinstance(payload, list) else "")
            for index, item in enumerate(items)
        ]
        result = services.signal_ingest(tenant=request.user.tenant, signals=signals, actor=request.user.ref)
        body = result.as_dict()
        return Response(body, status=status.HTTP_201_CREATED if body["accepted"] else status.HTTP_200_OK)
