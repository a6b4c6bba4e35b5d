"""Read-only ledger API: events (filtered, cursor-paginated), checkpoints, verification."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.ledger.models import STORED_COLUMNS, Checkpoint, LedgerEvent
from controlplane.ledger.verify import verification_record


class LedgerEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = LedgerEvent
        fields = list(STORED_COLUMNS)


class CheckpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = Checkpoint
        fields = ["seq", "head_hash", "created_at", "key_id", "signature"]


class LedgerEventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter()
    type_prefix = django_filters.CharFilter(field_name="type", lookup_expr="startswith")
    subject = django_filters.CharFilter()
    trace = django_filters.CharFilter(field_name="trace_id")
    tenant = django_filters.CharFilter()
    seq_from = django_filters.NumberFilter(field_name="seq", lookup_expr="gte")
    seq_to = django_filters.NumberFilter(field_name="seq", lookup_expr="lte")

    class Meta:
        model = LedgerEvent
        fields = ["type", "subject", "tenant"]


class SeqCursorPagination(CursorPagination):
    """Seq order; `?page_size=` in 1..500, refused (VALIDATION_FAILED) otherwise rather than ignored."""

    ordering = "seq"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= self.max_page_size):
            raise ValidationError(
                {self.page_size_query_param: [f"an integer from 1 to {self.max_page_size}"]}
            )
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters


class LedgerEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Events in seq order. Events of other tenants are hidden; tenant-less (system) events are shown."""

    serializer_class = LedgerEventSerializer
    filterset_class = LedgerEventFilter
    pagination_class = SeqCursorPagination
    required_capability = "ledger.read"
    lookup_field = "seq"
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return LedgerEvent.objects.none()
        tenant = self.request.user.tenant.slug
        return LedgerEvent.objects.filter(tenant__in=[tenant, ""])


class CheckpointViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = CheckpointSerializer
    queryset = Checkpoint.objects.all()
    required_capability = "ledger.read"
    lookup_field = "seq"
    lookup_value_regex = r"\d+"


class VerifyView(APIView):
    """Verify the whole chain now and return the result (also kept for the dashboard)."""

    required_capability = "ledger.verify"

    @extend_schema(
        responses=inline_serializer(
            "LedgerVerification",
            {
                "ok": serializers.BooleanField(),
                "events_checked": serializers.IntegerField(),
                "head_seq": serializers.IntegerField(allow_null=True),
                "head_hash": serializers.CharField(allow_null=True),
                "checkpoints_checked": serializers.IntegerField(),
                "failed_seq": serializers.IntegerField(required=False),
                "code": serializers.CharField(required=False),
                "detail": serializers.CharField(required=False),
            },
        )
    )
    def get(self, request: Request) -> Response:
        result, _ = verification_record()
        return Response(result.as_dict(), status=200 if result.ok else 409)
