"""Silences: create (201 active, or 202 pending approval), list, expire."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from incidents import selectors, services
from incidents.api import READ
from incidents.api.serializers import ExpireSerializer, SilenceSerializer, SilenceWriteSerializer
from incidents.models import Silence, SilenceStatus


class SilenceFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SilenceStatus.choices)

    class Meta:
        model = Silence
        fields = ["status"]


class SilenceViewSet(viewsets.ReadOnlyModelViewSet):
    """Silences. POST creates one (201 active, or 202 pending approval when it could hide high or
    critical signals); POST /{id}/expire/ ends it now."""

    serializer_class = SilenceSerializer
    filterset_class = SilenceFilter
    required_capabilities = {
        "list": READ,
        "retrieve": READ,
        "create": "silences.manage",
        "expire": "silences.manage",
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Silence.objects.none()
        return selectors.silence_list(tenant=self.request.user.tenant)

    @extend_schema(request=SilenceWriteSerializer, responses={201: SilenceSerializer, 202: SilenceSerializer})
    def create(self, request: Request) -> Response:
        payload = SilenceWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        silence = services.silence_create(actor=request.user, **payload.validated_data)
        code = 202 if silence.status == "pending_approval" else 201
        return Response(SilenceSerializer(self.get_queryset().get(pk=silence.pk)).data, status=code)

    @extend_schema(request=ExpireSerializer, responses=SilenceSerializer)
    @action(detail=True, methods=["post"])
    def expire(self, request: Request, pk: str | None = None) -> Response:
        payload = ExpireSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        silence = services.silence_expire(
            silence=self.get_object(), actor=request.user, reason=payload.validated_data["reason"]
        )
        return Response(SilenceSerializer(self.get_queryset().get(pk=silence.pk)).data)
