"""Read-only ledger API: events (filtered, cursor-paginated), checkpoints, verification."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.ledger.models import STORED_COLUMNS, Checkpoint, LedgerEvent
from controlplane.ledger.verify import verification_record

# The platform scope's capability (controlplane/identity/scope.py; the ledger cannot import identity).
PLATFORM_LEDGER_READ = "platform.ledger.read"


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
    ordering = "seq"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class LedgerEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Events in seq order. Events of other tenants are hidden; tenant-less (installation-wide) events
    (sign-in failures, platform acts) are shown only to holders of `platform.ledger.read`."""

    serializer_class = LedgerEventSerializer
    filterset_class = LedgerEventFilter
    pagination_class = SeqCursorPagination
    required_capability = "ledger.read"
    lookup_field = "seq"
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return LedgerEvent.objects.none()
        principal = self.request.user
        tenants = [principal.tenant.slug]
        if principal.has_capability(PLATFORM_LEDGER_READ):
            tenants.append("")
        return LedgerEvent.objects.filter(tenant__in=tenants)


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
