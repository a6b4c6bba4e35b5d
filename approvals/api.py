"""Approvals API: the queue, one decision, and bulk decisions with one reason."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from approvals import services
from approvals.models import ApprovalRequest, ApprovalStatus, ApprovalVote
from controlplane.policy.models import RiskTier


class ApprovalRequestSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.ref")
    decisions = serializers.SerializerMethodField()

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "subject_kind",
            "subject_id",
            "content_hash",
            "summary",
            "risk_tier",
            "quorum",
            "reason_codes",
            "requested_by",
            "status",
            "escalation_level",
            "created_at",
            "expires_at",
            "decided_at",
            "consumed_at",
            "decisions",
        ]

    def get_decisions(self, request: ApprovalRequest) -> list[dict]:
        return [
            {
                "approver": d.approver.ref,
                "decision": d.decision,
                "reason": d.reason,
                "decided_at": d.decided_at,
            }
            for d in request.decisions.all()
        ]


class DecideSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=ApprovalVote.choices)
    reason = serializers.CharField()
    content_hash = serializers.CharField(help_text="The hash of the content you reviewed.")


class BulkDecideItemSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=64)
    content_hash = serializers.CharField(help_text="The hash of the content you reviewed.")


class BulkDecideSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=ApprovalVote.choices)
    reason = serializers.CharField()
    requests = serializers.ListField(
        child=BulkDecideItemSerializer(),
        min_length=1,
        max_length=services.BULK_LIMIT,
        help_text="[{id, content_hash}, ...]",
    )


class ApprovalFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ApprovalStatus.choices)
    risk_tier = django_filters.ChoiceFilter(choices=RiskTier.choices)
    subject_kind = django_filters.CharFilter()

    class Meta:
        model = ApprovalRequest
        fields = ["status", "risk_tier", "subject_kind"]


class ApprovalRequestViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ApprovalRequestSerializer
    filterset_class = ApprovalFilter
    required_capabilities = {
        "list": "approvals.read",
        "retrieve": "approvals.read",
        "decide": "approvals.decide",
        "bulk_decide": "approvals.decide",
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApprovalRequest.objects.none()
        return (
            ApprovalRequest.objects.filter(tenant=self.request.user.tenant)
            .select_related("requested_by__tenant")
            .prefetch_related("decisions__approver__tenant")
        )

    @extend_schema(request=DecideSerializer, responses=ApprovalRequestSerializer)
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, pk: str | None = None) -> Response:
        payload = DecideSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        decided = services.approval_decide(
            approval=self.get_object(), actor=request.user, **payload.validated_data
        )
        return Response(ApprovalRequestSerializer(self.get_queryset().get(pk=decided.pk)).data)

    @extend_schema(request=BulkDecideSerializer, responses=ApprovalRequestSerializer(many=True))
    @action(detail=False, methods=["post"], url_path="bulk-decide")
    def bulk_decide(self, request: Request) -> Response:
        """All or nothing: one refusal refuses the whole batch, and names the request at fault."""
        payload = BulkDecideSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        services.approvals_bulk_decide(
            items=[(item["id"], item["content_hash"]) for item in data["requests"]],
            actor=request.user,
            decision=data["decision"],
            reason=data["reason"],
        )
        ids = [item["id"] for item in data["requests"]]
        return Response(ApprovalRequestSerializer(self.get_queryset().filter(pk__in=ids), many=True).data)
