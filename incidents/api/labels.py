"""The tenant's label mapping (`/api/v1/label-mapping/`): which alert labels, tried in order, name an
Alertmanager or Grafana alert's service. GET shows the current version; POST makes a new one (ledgered)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents import services
from incidents.api import READ
from incidents.services.labels import LABEL_NAME, MAX_LABELS

MAPPING = inline_serializer(
    "LabelMapping",
    {
        "version": serializers.IntegerField(),
        "service_labels": serializers.ListField(child=serializers.CharField()),
    },
)


class LabelMappingWriteSerializer(serializers.Serializer):
    # The service's own checks (LABEL_MAPPING_INVALID), stated in the schema as far as it can state them
    service_labels = serializers.ListField(
        child=serializers.RegexField(LABEL_NAME.pattern, max_length=100),
        min_length=1,
        max_length=MAX_LABELS,
        help_text="label names, tried in order; each named once",
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")


def _answer(tenant) -> dict:
    mapping = services.label_mapping_current(tenant=tenant)
    return {"version": mapping.version, "service_labels": list(mapping.service_labels)}


class LabelMappingView(APIView):
    """The current label mapping; POST `{"service_labels": [...], "reason"}` makes it a new version."""

    required_capabilities = {"get": READ, "post": "detection.manage"}

    @extend_schema(responses={200: MAPPING})
    def get(self, request: Request) -> Response:
        return Response(_answer(request.user.tenant))

    @extend_schema(request=LabelMappingWriteSerializer, responses={200: MAPPING, 201: MAPPING})
    def post(self, request: Request) -> Response:
        payload = LabelMappingWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        before = services.label_mapping_current(tenant=request.user.tenant).version
        services.label_mapping_set(
            tenant=request.user.tenant,
            service_labels=payload.validated_data["service_labels"],
            actor=request.user,
            reason=payload.validated_data["reason"],
        )
        answer = _answer(request.user.tenant)
        return Response(answer, status=201 if answer["version"] != before else 200)
